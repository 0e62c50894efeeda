import crypto from 'node:crypto';
import postgres from 'postgres';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../src/context.ts';
import { createApp } from '../src/app.ts';
import { connect, type Sql } from '../src/storage/database.ts';
import { createTestContext, createTestOrganization } from './support/context.ts';
import { startOrgsyncProcess, waitUntil, type OrgsyncProcess } from './support/process.ts';
import { oktaUser, SCIM_JSON } from './support/scim.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';

/**
 * The database goes away while orgsync (a real process) is writing: the line to PostgreSQL is
 * cut and restored, or PostgreSQL terminates orgsync's sessions. The process stays up, answers
 * 503 with Retry-After meanwhile, keeps every write it acknowledged and recovers by itself.
 */
const WRITERS = 16;
const RECOVERY_MS = 30_000;
/** A request without an answer by then counts as a failure (status 0) rather than hanging the test. */
const REQUEST_TIMEOUT_MS = 45_000;

let ctx: AppContext;
let org: Awaited<ReturnType<typeof createTestOrganization>>;
let proxy: TcpProxy;
let orgsync: OrgsyncProcess;
let databaseName: string;
// Only this process's sessions are terminated: other test files share the PostgreSQL server.
const applicationName = `orgsync-loss-${crypto.randomBytes(4).toString('hex')}`;

interface Outcome {
  userName: string;
  status: number;
  retryAfter: string | null;
  body: unknown;
}

/** WRITERS concurrent SCIM creates, each a new user, until stopped; every answer is kept. */
function writeLoad(prefix: string) {
  const outcomes: Outcome[] = [];
  let stopping = false;
  let next = 0;
  const writer = async () => {
    while (!stopping) {
      const userName = `${prefix}${next++}@loss.test`;
      try {
        const res = await fetch(`${orgsync.url}/scim/v2/Users`, {
          method: 'POST',
          headers: { authorization: `Bearer ${org.scimToken}`, 'content-type': SCIM_JSON },
          body: JSON.stringify(oktaUser(userName)),
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
        outcomes.push({
          userName,
          status: res.status,
          retryAfter: res.headers.get('retry-after'),
          body: await res.json(),
        });
      } catch (error) {
        // No answer (the process is gone, or the request hangs): status 0 fails the test below.
        outcomes.push({ userName, status: 0, retryAfter: null, body: String(error) });
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const writers = Array.from({ length: WRITERS }, writer);
  return {
    outcomes,
    created: () => outcomes.filter((o) => o.status === 201).length,
    stop: async () => {
      stopping = true;
      await Promise.all(writers);
    },
  };
}

/** Waits (polling) for `check`; fails at once, with the process's output, should it die meanwhile. */
function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  return waitUntil(
    () => {
      const code = orgsync.exitCode();
      if (code !== null)
        throw new Error(`orgsync exited (${code}) while waiting: ${what}\n${orgsync.output().slice(-5000)}`);
      return check();
    },
    RECOVERY_MS,
    () => `${what}; process output:\n${orgsync.output().slice(-3000)}`,
  );
}

const status = async (path: string, headers: Record<string, string> = {}) =>
  (await fetch(`${orgsync.url}${path}`, { headers })).status;

/** What every outcome of a load must satisfy once the database is back. */
async function expectNothingAcknowledgedLost(outcomes: Outcome[]) {
  expect(orgsync.exitCode()).toBeNull();
  expect(orgsync.output()).not.toMatch(/uncaught|TypeError/i);
  const failed = outcomes.filter((o) => o.status !== 201);
  for (const outcome of failed) {
    expect(outcome).toMatchObject({
      status: 503,
      retryAfter: expect.stringMatching(/^\d+$/),
      body: { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '503' },
    });
  }
  const acknowledged = outcomes.filter((o) => o.status === 201).map((o) => o.userName);
  const stored = await ctx.sql<{ userName: string }[]>`
    select user_name from scim_users
    where organization_id = ${org.organization.id} and user_name = any(${acknowledged})`;
  expect(stored.map((r) => r.userName).sort()).toEqual([...acknowledged].sort());
}

/** The reconciler is back too: it dispatches every event the acknowledged writes announced. */
async function reconcilerCatchesUp() {
  await until(async () => {
    const [row] = await ctx.sql<{ n: number }[]>`
        select count(*)::int as n from outbox
        where organization_id = ${org.organization.id} and dispatched_at is null`;
    return row!.n === 0;
  }, 'the reconciler never dispatched the outbox');
}

// Needs a real PostgreSQL to terminate sessions of, and a line to it to cut.
describe.skipIf(!process.env.DATABASE_URL)('losing the database under write load', () => {
  beforeAll(async () => {
    ctx = await createTestContext();
    org = await createTestOrganization(ctx, 'loss');
    const direct = new URL((ctx.database as unknown as { url: string }).url);
    databaseName = direct.pathname.slice(1);
    proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    const throughProxy = new URL(direct);
    throughProxy.host = `127.0.0.1:${proxy.port}`;
    throughProxy.searchParams.set('application_name', applicationName);
    orgsync = await startOrgsyncProcess({
      DATABASE_URL: throughProxy.toString(),
      DATABASE_POOL_MAX: '4',
      SCIM_RATE_LIMIT: '0',
      RECONCILE_EVENTS_SCHEDULE: '* * * * * *',
    });
  });

  afterAll(async () => {
    await orgsync?.stop();
    await proxy?.close();
    await ctx?.database.close();
  });

  it('a cut line: 503 with Retry-After, not ready, then recovers with every acknowledged write kept', async () => {
    const load = writeLoad('cut');
    try {
      await until(() => load.created() >= 20, 'no writes before the cut');
      proxy.cut();
      const cutAt = load.outcomes.length;
      await until(
        () => load.outcomes.slice(cutAt).some((o) => o.status === 503),
        'no 503 while the database is cut off',
      );
      await until(async () => (await status('/readyz')) === 503, '/readyz kept answering ready');
      const admin = await fetch(`${orgsync.url}/api/members`, { headers: { authorization: `Bearer ${org.adminKey}` } });
      expect(admin.status).toBe(503);
      expect(admin.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(await admin.json()).toMatchObject({ error: 'unavailable', message: expect.any(String) });
      // A route scimmy-routers answers itself (GET one user) says so in the SCIM shape too.
      const someone = load.outcomes.find((o) => o.status === 201)!.body as { id: string };
      const read = await fetch(`${orgsync.url}/scim/v2/Users/${someone.id}`, {
        headers: { authorization: `Bearer ${org.scimToken}` },
      });
      expect(read.status).toBe(503);
      expect(read.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(await read.json()).toMatchObject({
        schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
        status: '503',
      });
      // The reconciler's ticks fail too, logged, without taking the process down.
      await until(() => orgsync.output().includes('reconciler job failed'), 'no reconciler tick failed during the cut');

      proxy.restore();
      const restoredAt = load.outcomes.length;
      await until(async () => (await status('/readyz')) === 200, '/readyz never recovered');
      await until(
        () => load.outcomes.slice(restoredAt).some((o) => o.status === 201),
        'no write succeeded after the database came back',
      );
    } finally {
      proxy.restore(); // also when a step above failed, for the next test
      await load.stop();
    }
    await expectNothingAcknowledgedLost(load.outcomes);
    await reconcilerCatchesUp();
  }, 180_000);

  it("pg_terminate_backend of orgsync's sessions: the process stays up and keeps every acknowledged write", async () => {
    const load = writeLoad('terminated');
    try {
      for (let round = 0; round < 5; round++) {
        const before = load.created();
        await until(() => load.created() >= before + 10, `no writes before round ${round}`);
        // Sessions that are still reconnecting after the last round are not listed yet: terminate
        // as soon as there is one.
        await until(async () => {
          const [killed] = await ctx.sql<{ n: number }[]>`
            select count(*) filter (where pg_terminate_backend(pid))::int as n from pg_stat_activity
            where datname = ${databaseName} and application_name = ${applicationName}`;
          return killed!.n > 0;
        }, `no orgsync session to terminate in round ${round}`);
      }
      const after = load.created();
      await until(() => load.created() > after, 'no write succeeded after the sessions were terminated');
    } finally {
      await load.stop();
    }
    await expectNothingAcknowledgedLost(load.outcomes);
    await reconcilerCatchesUp();
  }, 180_000);
});

describe('requests while the pool is closed', () => {
  let closed: AppContext;
  let keys: { scimToken: string; adminKey: string };
  beforeAll(async () => {
    closed = await createTestContext();
    keys = await createTestOrganization(closed, 'closed');
  });
  afterAll(() => closed?.database.close());

  it('answer 503 with Retry-After, in the SCIM error shape under /scim/v2 and the admin API shape elsewhere', async () => {
    const app = createApp(closed);
    await closed.sql.end();

    const scim = await request(app)
      .post('/scim/v2/Users')
      .set('authorization', `Bearer ${keys.scimToken}`)
      .set('content-type', SCIM_JSON)
      .send(JSON.stringify(oktaUser('late@closed.test')));
    expect(scim.status).toBe(503);
    expect(scim.headers['retry-after']).toBe('5');
    expect(JSON.parse(scim.text)).toMatchObject({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
      status: '503',
      detail: expect.stringContaining('database'),
    });

    const admin = await request(app).get('/api/members').set('authorization', `Bearer ${keys.adminKey}`);
    expect(admin.status).toBe(503);
    expect(admin.headers['retry-after']).toBe('5');
    expect(admin.body).toEqual({ error: 'unavailable', message: expect.stringContaining('database') });

    const ready = await request(app).get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.headers['retry-after']).toBe('5');
  });
});

// ALTER DATABASE … ALLOW_CONNECTIONS false needs a real PostgreSQL.
describe.skipIf(!process.env.DATABASE_URL)('requests while the database refuses new sessions', () => {
  let refused: AppContext;
  let keys: { scimToken: string; adminKey: string };
  let dba: Sql;
  let name: string;
  beforeAll(async () => {
    refused = await createTestContext();
    keys = await createTestOrganization(refused, 'refused');
    const url = (refused.database as unknown as { url: string }).url;
    name = new URL(url).pathname.slice(1);
    dba = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
    await dba.unsafe(`alter database ${name} allow_connections false`);
    // The context's pool keeps the sessions it opened before; a new pool has to ask for one.
    refused = { ...refused, sql: connect(url, 2) };
  });
  afterAll(async () => {
    await refused?.sql.end({ timeout: 1 });
    await dba?.unsafe(`alter database ${name} allow_connections true`);
    await dba?.end();
    await refused?.database.close();
  });

  it('answer 503 with Retry-After, as for any other outage', async () => {
    const app = createApp(refused);
    const scim = await request(app).get('/scim/v2/Users').set('authorization', `Bearer ${keys.scimToken}`);
    expect(scim.status).toBe(503);
    expect(scim.headers['retry-after']).toBe('5');
    expect(JSON.parse(scim.text)).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'] });

    const admin = await request(app).get('/api/members').set('authorization', `Bearer ${keys.adminKey}`);
    expect(admin.status).toBe(503);
    expect(admin.headers['retry-after']).toBe('5');
    expect(admin.body).toEqual({ error: 'unavailable', message: expect.stringContaining('database') });
  });
});
