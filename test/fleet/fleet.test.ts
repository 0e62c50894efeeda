import fs from 'node:fs';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { createWebhookEndpoint } from '../../src/core/webhook-endpoints.ts';
import { systemActor } from '../../src/core/actor.ts';
import { connect } from '../../src/storage/database.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { startInstance, type Instance } from '../support/instance.ts';
import { oktaUser, PATCH_OP, SCIM_JSON } from '../support/scim.ts';
import { startSmtpServer } from '../support/smtp.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';
import { encode, makeIdpKeys, responseXml, signResponse } from '../saml/support/idp.ts';
import { CookieJar, idpMetadataXml } from '../saml/support/setup.ts';
import { freePort, startHaproxy, startPgbouncer, until } from './services.ts';

// The fleet: three orgsync processes behind HAProxy, on one PostgreSQL through PgBouncer in
// transaction mode (LISTEN on a direct connection). Instances 1 and 2 run the reconciler;
// instance 3 serves requests only and is the one killed with SIGKILL mid-load (a kill in the middle
// of sending a delivery would have it sent again, by design: delivery is at least once).
if (!process.env.DATABASE_URL) throw new Error('the fleet test needs DATABASE_URL (a real PostgreSQL)');

let ctx: AppContext;
let bouncer: Awaited<ReturnType<typeof startPgbouncer>>;
let lb: Awaited<ReturnType<typeof startHaproxy>>;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let org: Awaited<ReturnType<typeof createTestOrganization>>;
const instances: Instance[] = [];

const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

beforeAll(async () => {
  ctx = await createTestContext();
  const directUrl = (ctx.database as unknown as { url: string }).url;
  [smtp, receiver, bouncer] = await Promise.all([startSmtpServer(), startWebhookReceiver(), startPgbouncer(directUrl)]);
  const lbPort = await freePort();
  const env = {
    DATABASE_URL: bouncer.url,
    DATABASE_DIRECT_URL: directUrl,
    DATABASE_PGBOUNCER: 'true',
    DATABASE_POOL_MAX: '5',
    PUBLIC_URL: `http://127.0.0.1:${lbPort}`,
    TRUST_PROXY: 'true',
    SMTP_URL: smtp.url,
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    RECONCILE_EVENTS_SCHEDULE: '* * * * * *',
    RECONCILE_INVITES_SCHEDULE: '* * * * * *',
    DELIVERY_BACKOFF_MS: '100',
    LOG_LEVEL: 'debug',
  };
  instances.push(
    ...(await Promise.all([startInstance(env), startInstance(env), startInstance({ ...env, RECONCILER: 'false' })])),
  );
  lb = await startHaproxy(
    lbPort,
    instances.map((i) => new URL(i.url).host),
  );
  org = await createTestOrganization(ctx, 'fleet');
  await createWebhookEndpoint(
    ctx.sql,
    ctx.config.serverSecret,
    { organizationId: org.organization.id, url: receiver.url },
    systemActor('cli'),
    { allowPrivateNetworks: true },
  );
}, 180_000);

afterAll(async () => {
  // For a failed run: the database's sessions, and what each instance logged.
  fs.mkdirSync('test-artifacts/fleet', { recursive: true });
  fs.writeFileSync(
    'test-artifacts/fleet/pg_stat_activity.json',
    JSON.stringify(
      await ctx.sql`select pid, application_name, state, wait_event_type, wait_event, xact_start, query_start,
        left(query, 300) as query, pg_blocking_pids(pid) as blocked_by
        from pg_stat_activity where datname = current_database()`,
      null,
      1,
    ),
  );
  for (const what of ['pools', 'clients', 'servers']) {
    fs.writeFileSync(
      `test-artifacts/fleet/pgbouncer-${what}.json`,
      JSON.stringify(await bouncer.show(what).catch(String), null, 1),
    );
  }
  await Promise.all(instances.map((i) => i.stop()));
  instances.forEach((instance, n) =>
    fs.writeFileSync(
      `test-artifacts/fleet/instance-${n + 1}.log`,
      instance.logs.map((l) => JSON.stringify(l)).join('\n') + '\n',
    ),
  );
  await lb?.stop();
  await bouncer?.stop();
  await receiver?.close();
  await smtp?.close();
  await ctx?.database.close();
});

/** SCIM through the load balancer, as Okta sends it. */
function scim(method: string, path: string, body?: unknown) {
  return fetch(`${lb.url}/scim/v2${path}`, {
    method,
    headers: { ...bearer(org.scimToken), 'content-type': SCIM_JSON },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

describe('three instances behind HAProxy, through PgBouncer', () => {
  it('run an Okta sync while one instance is killed: every acknowledged write is there, the others keep answering', async () => {
    const acknowledged = new Map<string, string>();
    const emails = Array.from({ length: 60 }, (_, i) => `okta${i}@fleet.test`);
    let next = 0;
    let killed: Promise<void> | undefined;
    const worker = async () => {
      while (next < emails.length) {
        const email = emails[next++]!;
        // As an IdP does, a request that got no answer from orgsync (HAProxy's 502/503, a reset
        // connection) is sent again; a 409 then means an earlier attempt was written.
        for (let attempt = 0; attempt < 3; attempt++) {
          const res = await scim('POST', '/Users', oktaUser(email)).catch(() => null);
          if (res?.status === 201) acknowledged.set(email, ((await res.json()) as { id: string }).id);
          if (res && res.status < 500) break;
        }
        if (acknowledged.size === 20) killed ??= instances[2]!.kill();
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    await killed;
    expect(instances[2]!.child.signalCode).toBe('SIGKILL');
    // Connection failures are redispatched or retried: (nearly) everything was acknowledged.
    expect(acknowledged.size).toBeGreaterThan(55);

    const stored = await ctx.sql<{ id: string; userName: string }[]>`
      select account_id as id, user_name from scim_users where organization_id = ${org.organization.id}`;
    const byName = new Map(stored.map((u) => [u.userName, u.id]));
    for (const [email, id] of acknowledged) expect(byName.get(email)).toBe(id);

    // The rest of the sync goes through the two that are left: group push, a deactivation, reads.
    const ids = [...acknowledged.values()];
    const group = await scim('POST', '/Groups', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
      displayName: 'Engineering',
      members: ids.slice(0, 10).map((value) => ({ value })),
    });
    expect(group.status).toBe(201);
    const groupId = ((await group.json()) as { id: string }).id;
    const added = await scim('PATCH', `/Groups/${groupId}`, {
      schemas: [PATCH_OP],
      Operations: [{ op: 'add', path: 'members', value: ids.slice(10, 20).map((value) => ({ value })) }],
    });
    expect(added.status).toBe(204);
    const deactivated = await scim('PATCH', `/Users/${ids[0]}`, {
      schemas: [PATCH_OP],
      Operations: [{ op: 'replace', value: { active: false } }],
    });
    expect(deactivated.status).toBe(200);
    const statuses = await Promise.all(ids.slice(0, 30).map(async (id) => (await scim('GET', `/Users/${id}`)).status));
    expect(statuses.every((s) => s === 200)).toBe(true);
    const members = await ctx.sql`select count(*)::int as n from group_members where group_id = ${groupId}`;
    expect(members[0]!.n).toBe(20);
  });

  it('signs a person in with SAML through the load balancer (login, answer and session on any instance)', async () => {
    const idp = makeIdpKeys();
    const connection = await request(lb.url)
      .post('/api/saml/connections')
      .set(bearer(org.adminKey))
      .send({ name: 'IdP', metadataXml: idpMetadataXml([idp.certificate]) })
      .expect(201);
    expect(connection.body.id).toBeTruthy();
    const browser = new CookieJar();
    const acsPath = '/saml/fleet/acs';
    const login = await request(lb.url).get('/saml/fleet/login').query({ returnTo: '/app' }).expect(302);
    browser.store(login);
    const authnRequest = new URL(login.headers.location!).searchParams.get('SAMLRequest');
    expect(authnRequest).toBeTruthy();
    const { authnRequestOf } = await import('../saml/support/idp.ts');
    const requestId = authnRequestOf(login.headers.location!).id;
    const xml = signResponse(
      responseXml({
        acsUrl: `${lb.url}${acsPath}`,
        audience: `${lb.url}/saml/fleet/metadata`,
        nameId: 'owner@fleet.test',
        inResponseTo: requestId,
      }),
      idp,
    );
    const answer = await request(lb.url)
      .post(acsPath)
      .set('cookie', browser.header(acsPath))
      .type('form')
      .send({ SAMLResponse: encode(xml), RelayState: '/app' })
      .expect(303);
    browser.store(answer);
    // Every instance knows the session.
    for (let i = 0; i < 3; i++) {
      const me = await request(lb.url).get('/saml/me').set('cookie', browser.header('/saml/me')).expect(200);
      expect(me.body.account.email).toBe('owner@fleet.test');
    }
  });

  it('a token revoked through one instance is refused by another within a second', async () => {
    const [a, b] = [instances[0]!.url, instances[1]!.url];
    const issued = await request(a)
      .post('/api/scim-tokens')
      .set(bearer(org.adminKey))
      .send({ name: 'temp' })
      .expect(201);
    await request(b).get('/scim/v2/Users?count=1').set(bearer(issued.body.secret)).expect(200);
    await request(a).delete(`/api/scim-tokens/${issued.body.token.id}`).set(bearer(org.adminKey)).expect(200);
    const revokedAt = Date.now();
    let status = 200;
    while (status !== 401 && Date.now() < revokedAt + 1_000) {
      status = (await request(b).get('/scim/v2/Users?count=1').set(bearer(issued.body.secret))).status;
    }
    expect(status).toBe(401);
    await request(lb.url).get('/scim/v2/Users?count=1').set(bearer(issued.body.secret)).expect(401);
  });

  it('through PgBouncer a pool sends one query at a time per connection, so none waits forever', async () => {
    // postgres.js pipelines queries onto busy connections; PgBouncer 1.18 in transaction mode drops
    // the answers to the ones behind the first. With one connection, 20 queries all queue on it.
    const pool = connect(bouncer.url, 1, { pgbouncer: true });
    try {
      await pool`select 'connected'`;
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => pool`select ${i}::int as i, pg_sleep(0.01)::text as slept`),
      );
      expect(answers.map(([row]) => row!.i)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    } finally {
      await pool.end();
    }
  }, 10_000);

  it('PgBouncer never answered a query to a client it had already let go (a pipelined query would wait forever)', () => {
    expect(bouncer.log()).not.toMatch(/from server when not linked|idle server got dirty/);
  });

  it('sends every email and webhook once, and runs each reconciler tick on one instance', async () => {
    const invitees = Array.from({ length: 5 }, (_, i) => `invitee${i}@fleet.test`);
    await request(lb.url).post('/api/invitations').set(bearer(org.adminKey)).send({ emails: invitees }).expect(201);
    await until(
      async () => {
        const [row] = await ctx.sql<{ waiting: number }[]>`
        select (select count(*) from outbox where dispatched_at is null)
             + (select count(*) from deliveries where status <> 'delivered') as waiting`;
        return Number(row!.waiting) === 0;
      },
      'every event dispatched and every delivery sent',
      undefined,
      60_000,
    );

    for (const email of invitees) expect(smtp.messages.filter((m) => m.to.includes(email))).toHaveLength(1);
    const webhooks = receiver.delivered();
    expect(new Set(webhooks).size).toBe(webhooks.length);
    const [sent] = await ctx.sql<{ n: number }[]>`
      select count(*)::int as n from deliveries where kind = 'webhook' and status = 'delivered'`;
    expect(webhooks).toHaveLength(sent!.n);
    expect(sent!.n).toBeGreaterThan(60);

    // Several ticks of the every-second invitations job (the deliveries above may all be done
    // within the first two), each claimed by one instance.
    const claimedTicks = () => ctx.sql`select key from job_runs where key like 'orgsync:invitations:%'`;
    await until(async () => (await claimedTicks()).length >= 3, 'three ticks of the invitations job');
    // Stopped gracefully, the two reconciling instances have logged every run they made.
    await Promise.all([instances[0]!.stop(), instances[1]!.stop()]);
    const runs = instances.flatMap((i) => i.logs.filter((l) => l.msg === 'reconciler job' && l.job === 'invitations'));
    const ticks = await claimedTicks();
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    expect(runs).toHaveLength(ticks.length);
  });
});
