import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import type { Actor } from '../../src/core/actor.ts';
import { joinOrganization } from '../../src/core/memberships.ts';
import { createWebhookEndpoint } from '../../src/core/webhook-endpoints.ts';
import { connect } from '../../src/storage/database.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { TEST_SERVER_SECRET, createTestContext, createTestOrganization } from '../support/context.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';

const admin: Actor = { type: 'admin_key', id: 'k', name: 'key', channel: 'admin' };
let base: AppContext;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let orgId: string;
const instances: { ctx: AppContext; logs: Record<string, unknown>[] }[] = [];

/** A second (third…) orgsync instance: its own pool and logger on the same database. */
function instance() {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({ write: (chunk, _enc, done) => (logs.push(JSON.parse(String(chunk))), done()) });
  const sql = connect((base.database as unknown as { url: string }).url, 4);
  const ctx: AppContext = {
    ...base,
    sql,
    database: { ...base.database, sql, close: () => sql.end() },
    log: pino({ level: 'debug' }, sink),
  };
  instances.push({ ctx, logs });
  return { ctx, logs };
}

beforeAll(async () => {
  base = await createTestContext({ WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true', DELIVERY_BACKOFF_MS: '10' });
  receiver = await startWebhookReceiver();
  orgId = (await createTestOrganization(base, 'multi')).organization.id;
  await createWebhookEndpoint(base.sql, base.config.serverSecret, { organizationId: orgId, url: receiver.url }, admin, {
    allowPrivateNetworks: true,
  });
});
afterAll(async () => {
  await Promise.all(instances.map((i) => i.ctx.sql.end()));
  await receiver.close();
  await base.database.close();
});

async function joinPeople(count: number, prefix: string) {
  for (let i = 0; i < count; i++) {
    const a = await ensureAccount(base.sql, { email: `${prefix}${i}@multi.test` });
    await joinOrganization(base.sql, { organizationId: orgId, accountId: a.id, source: 'scim' }, admin);
  }
}

// Several instances need a real PostgreSQL; the embedded one is a single session in one process.
describe.skipIf(!process.env.DATABASE_URL)('three instances on one database', () => {
  it('deliver every event exactly once between them', async () => {
    const three = [instance(), instance(), instance()].map((i) => createReconciler(i.ctx));
    await joinPeople(60, 'once');
    const [{ n: expected }] =
      // Every event written while the endpoint is enabled (the owner joined before it was made).
      (await base.sql`select count(*)::int as n from outbox where organization_id = ${orgId} and dispatched_at is null`) as unknown as [
        { n: number },
      ];
    for (let round = 0; round < 3; round++) await Promise.all(three.map((r) => r.events()));
    const delivered = receiver.delivered();
    expect(delivered).toHaveLength(expected);
    expect(new Set(delivered).size).toBe(expected);
    const [row] = await base.sql`select count(*)::int as n from deliveries where status = 'delivered'`;
    expect(row!.n).toBe(expected);
  });

  it('run each scheduled tick of a periodic job on one instance only', async () => {
    const env = { ...base.config.reconciler, invitesSchedule: '* * * * * *', eventsSchedule: '0 0 1 1 *' };
    const three = [instance(), instance(), instance()].map((i) => ({
      logs: i.logs,
      reconciler: createReconciler({ ...i.ctx, config: { ...i.ctx.config, reconciler: env } }),
    }));
    const claimedTicks = () => base.sql`select key from job_runs where key like 'orgsync:invitations:%'`;
    three.forEach((t) => t.reconciler.start());
    // Until three ticks have been claimed (each every-second tick by one instance).
    await vi.waitUntil(async () => (await claimedTicks()).length >= 3, { timeout: 20_000, interval: 50 });
    await Promise.all(three.map((t) => t.reconciler.stop()));
    const runs = three.flatMap((t) => t.logs.filter((l) => l.job === 'invitations' && l.msg === 'reconciler job'));
    const ticks = await claimedTicks();
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    // A tick is run, or skipped (counted) when the instance that claimed it is still running the last one.
    const stats = three.map((t) => t.reconciler.lanes.invitations.stats);
    expect(stats.reduce((n, s) => n + s.runs + s.skipped, 0)).toBe(ticks.length);
    expect(runs).toHaveLength(stats.reduce((n, s) => n + s.runs, 0));
  });

  it('an instance killed in the middle of a delivery loses nothing: another sends it', async () => {
    receiver.received.length = 0;
    receiver.setMode('hang');
    await joinPeople(1, 'killed');
    const [event] =
      await base.sql`select id from outbox where organization_id = ${orgId} and type = 'member.joined' order by id desc limit 1`;
    const child = spawn(process.execPath, ['bin/orgsync.js', 'reconcile', '--once', '--json'], {
      env: {
        PATH: process.env.PATH,
        DATABASE_URL: (base.database as unknown as { url: string }).url,
        SERVER_SECRET: TEST_SERVER_SECRET,
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
        WEBHOOK_TIMEOUT_MS: '60000',
      },
      stdio: 'ignore',
    });
    const until = Date.now() + 60_000;
    while (!receiver.received.some((r) => r.eventId === String(event!.id))) {
      if (Date.now() > until) throw new Error('the child never started the delivery');
      await new Promise((r) => setTimeout(r, 50));
    }
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await exited;
    const [mid] =
      await base.sql`select status, claimed_by, locked_until > now() as leased from deliveries where organization_id = ${orgId} and event_id = ${event!.id}`;
    expect(mid).toMatchObject({ status: 'pending', claimedBy: expect.stringMatching(/:\d+:/), leased: true });

    // The dead instance's lease runs out (its length is WEBHOOK_TIMEOUT_MS plus a margin).
    await base.sql`update deliveries set locked_until = now() where organization_id = ${orgId} and event_id = ${event!.id}`;

    receiver.setMode('ok');
    await createReconciler(instance().ctx).events();
    const [after] =
      await base.sql`select status, attempts from deliveries where organization_id = ${orgId} and event_id = ${event!.id}`;
    expect(after).toMatchObject({ status: 'delivered', attempts: 1 });
    expect(receiver.delivered()).toEqual([String(event!.id)]);
  });
});
