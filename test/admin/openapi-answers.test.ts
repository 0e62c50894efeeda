import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import { documentedRoutes, type DocumentedRoute } from '../../src/admin/api-routes.ts';
import { createApp } from '../../src/app.ts';
import type { AppContext } from '../../src/context.ts';
import { createSession } from '../../src/core/sessions.ts';
import { SESSION_COOKIE } from '../../src/http/session-cookie.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { oktaUser, scimClient } from '../support/scim.ts';
import { makeIdpKeys } from '../saml/support/idp.ts';
import { idpMetadataXml } from '../saml/support/setup.ts';

let ctx: AppContext;
let app: Express;
let dns: TestDnsServer;
let org: Awaited<ReturnType<typeof createTestOrganization>>;
/** Serves IdP metadata, for a connection that follows a metadata URL. */
let metadataServer: http.Server;
let metadataUrl: string;
beforeAll(async () => {
  dns = await startDnsServer();
  const metadata = idpMetadataXml([makeIdpKeys('answers-metadata').certificate], 'https://idp.answers.test/by-url');
  metadataServer = http.createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'application/xml' }).end(metadata),
  );
  await new Promise<void>((resolve) => metadataServer.listen(0, '127.0.0.1', resolve));
  metadataUrl = `http://127.0.0.1:${(metadataServer.address() as AddressInfo).port}/metadata`;
  ctx = await createTestContext({
    DNS_SERVERS: dns.server,
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    SAML_METADATA_ALLOW_PRIVATE_NETWORKS: 'true',
  });
  app = createApp(ctx);
  org = await createTestOrganization(ctx, 'answers');
});
afterAll(async () => {
  await ctx.database.close();
  await dns.close();
  await new Promise((resolve) => metadataServer.close(resolve));
});

interface Answer {
  route: string;
  status: number;
  body: unknown;
}
const answers: Answer[] = [];

/**
 * Calls `method template` of the admin API (OpenAPI path syntax, `{name}` filled from params)
 * as the organization's admin key, or with a session cookie; keeps the answer for the check.
 */
async function call(
  method: 'get' | 'post' | 'put' | 'patch' | 'delete',
  template: string,
  options: {
    params?: Record<string, string>;
    query?: Record<string, string>;
    body?: unknown;
    csv?: string;
    cookie?: string;
  } = {},
) {
  const path = template.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(options.params![name]!));
  const agent = request(app);
  let req = agent[method](`/api${path}`).query(options.query ?? {});
  req = options.cookie
    ? req.set('cookie', options.cookie).set('origin', 'https://orgsync.test')
    : req.set('authorization', `Bearer ${org.adminKey}`);
  const res = await (options.csv !== undefined
    ? req.set('content-type', 'text/csv').send(options.csv)
    : options.body !== undefined
      ? req.send(options.body as object)
      : req);
  expect(res.status, `${method} ${template}: ${res.text}`).toBeLessThan(300);
  // A non-JSON answer (CSV, JSON Lines) is checked as the text it is.
  const body: unknown = res.status === 204 ? null : /json$/.test(res.type) ? res.body : res.text;
  answers.push({ route: `${method} ${template}`, status: res.status, body });
  return body as Record<string, any>;
}

describe('every documented route, called for real, answers what its schema says', () => {
  it('runs through the whole admin API with a seeded organization', async () => {
    const scim = scimClient(app, org.scimToken);
    const people = [];
    for (const name of ['rhea', 'sam', 'tom', 'uma']) {
      const res = await scim.post('/Users', oktaUser(`${name}@answers.test`)).expect(201);
      const [row] = await ctx.sql<{ id: string }[]>`select id from accounts where email = ${`${name}@answers.test`}`;
      people.push({ scimId: res.body.id as string, accountId: row!.id });
    }
    const [rhea, sam, tom, uma] = people as [
      (typeof people)[0],
      (typeof people)[0],
      (typeof people)[0],
      (typeof people)[0],
    ];

    await call('get', '/organization');
    await call('patch', '/organization', {
      body: { name: 'Answers Inc', inviteTtlHours: 48, requireSso: false, ssoBreakGlassAccountIds: [] },
    });
    await call('get', '/roles');
    await call('post', '/roles', { body: { key: 'auditor', name: 'Auditor', permissions: ['members:view'] } });
    await call('patch', '/roles/{key}', { params: { key: 'auditor' }, body: { name: 'Auditors' } });

    const domain = await call('post', '/domains', { body: { domain: 'answers.example' } });
    await call('get', '/domains');
    dns.publish('answers.example', domain.verificationToken as string);
    await call('post', '/domains/{domain}/verify', { params: { domain: 'answers.example' } });
    await call('delete', '/domains/{domain}', { params: { domain: 'answers.example' } });

    await call('get', '/members', { query: { limit: '10' } });
    await call('get', '/members', { query: { tab: 'members', sort: 'email', order: 'desc', q: 'r', limit: '2' } });
    await call('put', '/members/{accountId}/roles', {
      params: { accountId: rhea.accountId },
      body: { roles: ['viewer', 'auditor'], overrideIdp: true },
    });
    await call('delete', '/roles/{key}', { params: { key: 'auditor' }, query: { reassignTo: 'member' } });
    await call('delete', '/members/{accountId}', {
      params: { accountId: sam.accountId },
      query: { overrideIdp: 'true' },
    });
    await call('post', '/members/remove', {
      body: { accountIds: [tom.accountId, crypto.randomUUID()], overrideIdp: true },
    });

    const invited = await call('post', '/invitations', {
      body: { emails: 'ivy@answers.test, jon@answers.test', roles: ['viewer'] },
    });
    await call('post', '/invitations/import', {
      csv: 'email\nkim@answers.test\nnot-an-address\n',
      query: { roles: 'viewer' },
    });
    const job = await call('post', '/invitations/imports', {
      csv: 'email\nlea@answers.test\nnot-an-address\n',
      query: { roles: 'viewer', fileName: 'people.csv' },
    });
    await expect
      .poll(async () => (await call('get', '/invitations/imports/{id}', { params: { id: job.id as string } })).status)
      .toBe('done');
    const example = await call('get', '/invitations/imports/example.csv');
    expect(example).toMatch(/^email/);
    await call('get', '/invitations', { query: { status: 'pending' } });
    const [ivy, jon] = invited.results as { invitation: { id: string } }[];
    await call('post', '/invitations/{id}/resend', { params: { id: ivy!.invitation.id } });
    await call('delete', '/invitations/{id}', { params: { id: jon!.invitation.id } });

    const group = await call('post', '/groups', { body: { displayName: 'Ops' } });
    await call('patch', '/groups/{id}', { params: { id: group.id as string }, body: { displayName: 'Operations' } });
    await call('post', '/groups/{id}/members', { params: { id: group.id as string }, body: { add: [rhea.accountId] } });
    await call('get', '/groups/{id}/members', { params: { id: group.id as string } });
    await call('get', '/groups', { query: { source: 'local' } });

    const mapping = await call('post', '/group-mappings', { body: { groupName: 'Engineering', roles: ['viewer'] } });
    await call('get', '/group-mappings');
    await call('get', '/group-mappings/preview', { query: { groupId: group.id as string } });
    await call('patch', '/group-mappings/{id}', { params: { id: mapping.id as string }, body: { roles: ['member'] } });
    await call('delete', '/group-mappings/{id}', { params: { id: mapping.id as string } });
    await call('delete', '/groups/{id}', { params: { id: group.id as string } });

    const hook = await call('post', '/webhooks', { body: { url: 'http://127.0.0.1:9/hook' } });
    await call('get', '/webhooks');
    await call('post', '/scim-tokens', { body: { name: 'for a webhook event' } }); // an event after the hook
    // Sends the invitation emails (no SMTP: logged) and the webhooks (nobody listens: a failed attempt).
    await createReconciler(ctx).events();
    await call('get', '/deliveries', { query: { status: 'delivered' } });
    const hookDeliveries = await call('get', '/webhooks/{id}/deliveries', {
      params: { id: hook.id as string },
      query: { limit: '5' },
    });
    expect(hookDeliveries.items).not.toEqual([]);
    const [attempted] = await ctx.sql<{ id: string }[]>`
      select delivery_id::text as id from delivery_attempts where organization_id = ${org.organization.id} limit 1`;
    const attempts = await call('get', '/deliveries/{id}/attempts', { params: { id: attempted!.id } });
    expect(attempts.items).not.toEqual([]);
    await call('patch', '/webhooks/{id}', { params: { id: hook.id as string }, body: { enabled: false } });
    await call('post', '/deliveries/retry', { body: { ids: [] } });
    await call('delete', '/webhooks/{id}', { params: { id: hook.id as string } });
    await call('get', '/events', { query: { status: 'failed' } });
    await call('post', '/events/retry', { body: {} });

    const tokens = await call('get', '/scim-tokens');
    const idp = (tokens.tokens as { id: string; name: string }[]).find((t) => t.name === 'idp')!;
    await call('get', '/scim-tokens/{id}/requests', { params: { id: idp.id }, query: { limit: '5' } });
    const issued = await call('post', '/scim-tokens', { body: { name: 'second', expiresInDays: 30 } });
    const rotated = await call('post', '/scim-tokens/{id}/rotate', {
      params: { id: issued.token.id as string },
      body: { overlapHours: 1 },
    });
    await call('delete', '/scim-tokens/{id}', { params: { id: rotated.token.id as string } });
    // A refused SCIM request, logged with its error detail.
    await scim.get('/Users/not-a-user').expect(404);
    await call('get', '/scim-tokens/{id}/requests', { params: { id: idp.id }, query: { limit: '5' } });

    const key = await call('post', '/api-keys', { body: { name: 'ci', roles: ['viewer'], expiresInDays: 30 } });
    await call('get', '/api-keys');
    await call('delete', '/api-keys/{id}', { params: { id: key.key.id as string } });

    await call('get', '/saml/service-provider');
    const connection = await call('post', '/saml/connections', {
      body: {
        name: 'Test IdP',
        idpEntityId: 'https://idp.answers.test/metadata',
        ssoUrl: 'https://idp.answers.test/sso',
        certificates: [makeIdpKeys('answers-idp').certificate],
      },
    });
    await call('get', '/saml/connections');
    await call('get', '/saml/connections/{id}', { params: { id: connection.id as string } });
    await call('patch', '/saml/connections/{id}', {
      params: { id: connection.id as string },
      body: { enabled: false },
    });
    const followed = await call('post', '/saml/connections', { body: { name: 'By URL', metadataUrl } });
    await call('post', '/saml/connections/{id}/refresh-metadata', { params: { id: followed.id as string } });
    await call('patch', '/saml/connections/{id}', {
      params: { id: followed.id as string },
      body: { metadataUrl: null },
    });
    await call('get', '/saml/attempts');
    await call('delete', '/saml/connections/{id}', { params: { id: connection.id as string } });

    await call('get', '/audit', { query: { limit: '100' } });
    expect(await call('get', '/audit/export', { query: { format: 'csv' } })).toMatch(/^id,at,/);
    await call('get', '/audit/export', { query: { format: 'jsonl', action: 'role.deleted' } });

    const { secret } = await createSession(ctx.sql, ctx.config.serverSecret, {
      organizationId: org.organization.id,
      accountId: uma.accountId,
      via: 'invite',
    });
    await call('post', '/leave', { cookie: `${SESSION_COOKIE}=${secret}` });

    if (process.env.DUMP_ANSWERS) writeFileSync(process.env.DUMP_ANSWERS, JSON.stringify(answers, null, 1));
    const byRoute = new Map(
      documentedRoutes().map((r): [string, DocumentedRoute] => [`${r.method} ${r.path.replace(/:(\w+)/g, '{$1}')}`, r]),
    );
    for (const answer of answers) {
      const route = byRoute.get(answer.route);
      expect(route, `${answer.route} is documented`).toBeDefined();
      const schema = route!.responses[answer.status as 200];
      expect(schema, `${answer.route} documents status ${answer.status}`).not.toBeUndefined();
      if (schema === null) expect(answer.body).toBeNull();
      else {
        const parsed = schema!.safeParse(answer.body);
        expect(parsed.error?.issues ?? [], `${answer.route} ${answer.status}`).toEqual([]);
      }
    }
    expect([...byRoute.keys()].filter((r) => !answers.some((a) => a.route === r))).toEqual([]);
  });
});
