import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ReservedSql } from 'postgres';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import type { Actor } from '../../src/core/actor.ts';
import { changeGroupMembers, createGroup } from '../../src/core/groups.ts';
import { getMembership, joinOrganization } from '../../src/core/memberships.ts';
import { createGroupRoleMapping } from '../../src/core/role-mapping.ts';
import { PERMISSIONS } from '../../src/core/permissions.ts';
import { sealSecret } from '../../src/core/secrets.ts';
import { createWebhookEndpoint } from '../../src/core/webhook-endpoints.ts';
import { createLogger } from '../../src/log.ts';
import { claimDeliveries } from '../../src/sync/deliver.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { Lane } from '../../src/sync/lane.ts';
import { claimEvents } from '../../src/sync/outbox.ts';
import type { Reconciler } from '../../src/sync/reconciler.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { countsBetween, tableCounts } from '../support/table-counts.ts';
import { startSmtpServer } from '../support/smtp.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';

const admin: Actor = { type: 'admin_key', id: 'k', name: 'key', channel: 'admin', permissions: PERMISSIONS };
const scim: Actor = { type: 'scim_token', id: 't', name: 'okta', channel: 'scim' };
type Receiver = Awaited<ReturnType<typeof startWebhookReceiver>>;

/** Polls `condition` until it holds; fails after `ms` (a bound the issue sets, not a sleep). */
async function until(what: string, condition: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function webhook(ctx: AppContext, organizationId: string, receiver: Receiver) {
  await createWebhookEndpoint(ctx.sql, ctx.config.serverSecret, { organizationId, url: receiver.url }, admin, {
    allowPrivateNetworks: true,
  });
}

async function queueInvitationEmail(ctx: AppContext, organizationId: string, email: string) {
  const payload = { email, invitedBy: 'Ada', sealed: { token: sealSecret('osinv_T', ctx.config.serverSecret) } };
  await ctx.sql`insert into outbox (organization_id, type, payload) values (${organizationId}, 'invite.created', ${ctx.sql.json(payload)})`;
}

describe('lanes', () => {
  const log = createLogger('silent');

  it('fold a burst of wake-ups into one more run', async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    let runs = 0;
    const lane = new Lane('test', async () => ((runs += 1), await gate, {}), log);
    for (let i = 0; i < 5000; i++) lane.wake();
    release();
    await lane.idle();
    expect(runs).toBe(2);
    expect(lane.stats).toMatchObject({ runs: 2, coalesced: 4999 });
  });

  it('under a stream of wake-ups, start the next run no sooner than settleMs after the last began', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'performance'] });
    try {
      let release = () => {};
      let runs = 0;
      let more = false;
      const lane = new Lane(
        'test',
        async () => {
          runs += 1;
          await new Promise<void>((r) => (release = r));
          return { more };
        },
        log,
        1_000,
      );
      lane.wake();
      await vi.advanceTimersByTimeAsync(0);
      lane.wake(); // during the first run
      await vi.advanceTimersByTimeAsync(400);
      release();
      await vi.advanceTimersByTimeAsync(599);
      expect(runs).toBe(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(runs).toBe(2);
      // A run whose budget ran out asks for the next at once.
      more = true;
      release();
      await vi.advanceTimersByTimeAsync(0);
      await new Promise((r) => setImmediate(r));
      expect(runs).toBe(3);
      more = false;
      release();
      await lane.idle();
      expect(runs).toBe(3);
    } finally {
      vi.useRealTimers();
    }
  });

  it('skip a scheduled tick while a run is going, counting it', async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const lane = new Lane('test', async () => (await gate, {}), log);
    lane.tick();
    lane.tick();
    lane.tick();
    release();
    await lane.idle();
    expect(lane.stats).toMatchObject({ runs: 1, skipped: 2, coalesced: 0 });
  });
});

// A started reconciler: the events schedule is a year apart, so only NOTIFY (PostgreSQL) wakes dispatch.
describe.skipIf(!process.env.DATABASE_URL)('a webhook endpoint that hangs, with 1,000 queued events', () => {
  let ctx: AppContext;
  let hanging: Receiver;
  let healthy: Receiver;
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let reconciler: Reconciler;
  let flood: string;
  let calm: string;
  let mappedGroup: string;

  beforeAll(async () => {
    smtp = await startSmtpServer();
    ctx = await createTestContext({
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      WEBHOOK_TIMEOUT_MS: '120000',
      RECONCILE_EVENTS_SCHEDULE: '0 0 1 1 *',
      SMTP_URL: smtp.url,
    });
    hanging = await startWebhookReceiver();
    hanging.setMode('hang');
    healthy = await startWebhookReceiver();
    flood = (await createTestOrganization(ctx, 'flood')).organization.id;
    calm = (await createTestOrganization(ctx, 'calm')).organization.id;
    await webhook(ctx, flood, hanging);
    await webhook(ctx, calm, healthy);
    mappedGroup = (await createGroup(ctx.sql, { organizationId: flood, source: 'scim', displayName: 'Admins' }, scim))
      .id;
    await createGroupRoleMapping(ctx.sql, { organizationId: flood, groupId: mappedGroup, roles: ['admin'] }, admin);

    reconciler = createReconciler(ctx);
    reconciler.start();
    await reconciler.ready();
    await ctx.sql`
      insert into outbox (organization_id, type, payload)
      select ${flood}, 'member.updated', jsonb_build_object('import', i) from generate_series(1, 1000) i`;
    await until('the endpoint hangs on its two slots', () => hanging.concurrency.open === 2);
  });
  afterAll(async () => {
    await hanging.close(); // the hanging sends fail now, so stop() need not wait for their timeout
    await healthy.close();
    await reconciler.stop();
    await smtp.close();
    await ctx.database.close();
  });

  it('a group change still maps its role within 5 s', async () => {
    const person = await ensureAccount(ctx.sql, { email: 'late@flood.test' });
    await joinOrganization(ctx.sql, { organizationId: flood, accountId: person.id, source: 'scim' }, scim);
    await changeGroupMembers(ctx.sql, flood, mappedGroup, { add: [person.id] }, scim);
    await until(
      'the mapped role',
      async () => (await getMembership(ctx.sql, flood, person.id))!.mappedRoles.includes('admin'),
      5_000,
    );
  });

  it('an invitation email is sent while webhooks hang', async () => {
    await queueInvitationEmail(ctx, flood, 'resent@flood.test');
    await until('the email', () => smtp.messages.some((m) => m.to.includes('resent@flood.test')));
  });

  it("another organization's webhooks are delivered", async () => {
    const person = await ensureAccount(ctx.sql, { email: 'someone@calm.test' });
    await joinOrganization(ctx.sql, { organizationId: calm, accountId: person.id, source: 'scim' }, scim);
    await until('the webhook', () => healthy.received.some((r) => JSON.parse(r.body).data.accountId === person.id));
  });

  it('wakes dispatch on NOTIFY, without the schedule', async () => {
    const person = await ensureAccount(ctx.sql, { email: 'notified@calm.test' });
    await joinOrganization(ctx.sql, { organizationId: calm, accountId: person.id, source: 'scim' }, scim);
    await until('the event dispatched', async () => {
      const [row] = await ctx.sql`
        select count(*)::int as n from outbox where organization_id = ${calm} and dispatched_at is null`;
      return row!.n === 0;
    });
  });

  it('keeps two sends in flight per endpoint, and no transaction open across them', async () => {
    await until('the backlog dispatched', async () => {
      const [row] = await ctx.sql`select count(*)::int as n from outbox where dispatched_at is null`;
      return row!.n === 0;
    });
    // Every other delivery went out: its outcome committed.
    await until('only the hanging endpoint has deliveries left', async () => {
      const [row] = await ctx.sql`
        select count(*)::int as n from deliveries
        where status = 'pending' and not (organization_id = ${flood} and kind = 'webhook')`;
      return row!.n === 0;
    });
    await Promise.all(Object.values(reconciler.lanes).map((l) => l.idle()));
    const leased = await ctx.sql`
      select organization_id, kind from deliveries where locked_until > now()`;
    expect(leased).toEqual([
      { organizationId: flood, kind: 'webhook' },
      { organizationId: flood, kind: 'webhook' },
    ]);
    expect(hanging.concurrency).toEqual({ open: 2, max: 2 });
    const open = await ctx.sql`
      select state, query from pg_stat_activity
      where datname = current_database() and state like 'idle in transaction%'`;
    expect(open).toEqual([]);
    const [waiting] = await ctx.sql`
      select count(*)::int as n from deliveries where organization_id = ${flood} and kind = 'webhook' and status = 'pending'`;
    expect(waiting!.n).toBeGreaterThan(1000);
  });
});

// Skipped: under a loaded parallel run the first `reconciler.events()` sometimes returns after one
// of the three failing sends (a race between Sending.drain and the webhook lane's own claims,
// not yet found); it passes on its own. A flaky test would block CI, so it waits for that fix.
describe('the circuit breaker of a webhook endpoint', () => {
  let ctx: AppContext;
  let receiver: Receiver;
  let orgId: string;
  let reconciler: Reconciler;
  const endpoint = async () =>
    (await ctx.sql`select consecutive_failures, circuit_open_until > now() as open from webhook_endpoints`)[0]!;
  const attempts = async () =>
    (await ctx.sql`select attempts, status from deliveries order by id`).map((d) => `${d.status}:${d.attempts}`);

  beforeAll(async () => {
    ctx = await createTestContext({
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      WEBHOOK_BREAKER_FAILURES: '3',
      WEBHOOK_ENDPOINT_CONCURRENCY: '1',
      // Failed deliveries wait long: only the deliveries not tried yet are due in this test.
      DELIVERY_BACKOFF_MS: '600000',
    });
    receiver = await startWebhookReceiver();
    orgId = (await createTestOrganization(ctx, 'breaker')).organization.id;
    reconciler = createReconciler(ctx);
    await reconciler.events(); // the organization's own events, before there is an endpoint
    await webhook(ctx, orgId, receiver);
  });
  afterAll(async () => {
    await receiver.close();
    await ctx.database.close();
  });

  it('opens after consecutive failures: the other deliveries wait without attempts', async () => {
    receiver.setMode('fail');
    await ctx.sql`
      insert into outbox (organization_id, type, payload)
      select ${orgId}, 'member.updated', jsonb_build_object('n', i) from generate_series(1, 6) i`;
    await reconciler.events();
    expect(receiver.received).toHaveLength(3);
    expect(await endpoint()).toEqual({ consecutiveFailures: 3, open: true });
    expect(await attempts()).toEqual(['pending:1', 'pending:1', 'pending:1', 'pending:0', 'pending:0', 'pending:0']);
    await reconciler.events();
    expect(receiver.received).toHaveLength(3);
  });

  it('after the cool-down sends one trial; a failing trial opens it again', async () => {
    await ctx.sql`update webhook_endpoints set circuit_open_until = now()`; // the cool-down has passed
    await reconciler.events();
    expect(receiver.received).toHaveLength(4);
    expect(await endpoint()).toEqual({ consecutiveFailures: 4, open: true });
    expect(await attempts()).toEqual(['pending:1', 'pending:1', 'pending:1', 'pending:1', 'pending:0', 'pending:0']);
  });

  it('a successful trial closes it and the waiting deliveries go out', async () => {
    receiver.setMode('ok');
    await ctx.sql`update webhook_endpoints set circuit_open_until = now()`;
    await reconciler.events();
    expect(await endpoint()).toEqual({ consecutiveFailures: 0, open: null });
    expect(await attempts()).toEqual([
      'pending:1',
      'pending:1',
      'pending:1',
      'pending:1',
      'delivered:1',
      'delivered:1',
    ]);
  });
});

describe('claims are fair across organizations', () => {
  let ctx: AppContext;
  let busy: string;
  let quiet: string;
  beforeAll(async () => {
    ctx = await createTestContext();
    busy = (await createTestOrganization(ctx, 'busy')).organization.id;
    quiet = (await createTestOrganization(ctx, 'quiet')).organization.id;
  });
  afterAll(async () => ctx.database.close());

  it("dispatch takes the others' events beside one organization's flood", async () => {
    await ctx.sql`
      insert into outbox (organization_id, type, payload)
      select ${busy}, 'member.updated', '{}'::jsonb from generate_series(1, 1000)`;
    await ctx.sql`insert into outbox (organization_id, type, payload) values (${quiet}, 'member.updated', '{}')`;
    const batch = await ctx.sql.begin((tx) => claimEvents(tx, 2));
    expect(batch.map((e) => e.organizationId).sort()).toEqual([busy, quiet].sort());
  });

  it("the sending lanes take the others' deliveries beside one organization's flood", async () => {
    await ctx.sql`
      insert into deliveries (organization_id, event_id, kind, target)
      select organization_id, id, 'email', 'to' || id || '@fair.test' from outbox where type = 'member.updated'`;
    const claims = await claimDeliveries(ctx.sql, { kind: 'email', limit: 2, claimedBy: 'test', leaseMs: 60_000 });
    expect(claims.map((c) => c.delivery.organizationId).sort()).toEqual([busy, quiet].sort());
    const again = await claimDeliveries(ctx.sql, { kind: 'email', limit: 2, claimedBy: 'test', leaseMs: 60_000 });
    expect(again.map((c) => c.delivery.organizationId)).toEqual([busy, busy]);
    expect(new Set([...claims, ...again].map((c) => c.delivery.id)).size).toBe(4);
  });
});

/**
 * A claim reads what it takes (rows counted from pg_stat_xact_user_tables, in the claim's own
 * transaction), however many deliveries wait: a burst of member events leaves thousands queued
 * for one endpoint, all dispatched at one moment, while the sending lanes claim a row or two at a
 * time as slots free up. The session first claims while nothing is pending (statistics taken
 * then, as between two bursts): a plan kept from then would read the whole queue now.
 */
describe('a claim with thousands of deliveries queued', () => {
  const QUEUED = 3_000;
  let ctx: AppContext;
  let session: ReservedSql;
  let busy: string;
  let other: string;
  const webhooks = { kind: 'webhook', claimedBy: 'test', leaseMs: 60_000, perTarget: 2 } as const;
  const emails = { kind: 'email', claimedBy: 'test', leaseMs: 60_000 } as const;

  /** The claim's rows and the deliveries it read, rolled back (the queue stays as it was). */
  async function rowsReadClaiming(request: Parameters<typeof claimDeliveries>[1]) {
    await session`begin`;
    try {
      const before = await tableCounts(session, 'deliveries');
      const claims = await claimDeliveries(session, request);
      const after = await tableCounts(session, 'deliveries');
      return { claims, rowsRead: countsBetween(before, after).rowsRead };
    } finally {
      await session`rollback`;
    }
  }

  beforeAll(async () => {
    ctx = await createTestContext({ WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
    const orgId = (await createTestOrganization(ctx, 'queued')).organization.id;
    const endpoint = async () =>
      (
        await createWebhookEndpoint(
          ctx.sql,
          ctx.config.serverSecret,
          { organizationId: orgId, url: 'http://127.0.0.1:9/' },
          admin,
          { allowPrivateNetworks: true },
        )
      ).id;
    busy = await endpoint();
    other = await endpoint();
    session = await ctx.sql.reserve();
    // The queue as statistics last saw it: a history of delivered rows, nothing pending.
    await session`
      insert into outbox (organization_id, type, payload, dispatched_at)
      select ${orgId}, 'member.updated', '{}'::jsonb, now() from generate_series(1, 100)`;
    await session`
      insert into deliveries (organization_id, event_id, kind, target, status, delivered_at)
      select organization_id, id, kind, target, 'delivered', now() from outbox,
        (values ('webhook', ${busy}), ('webhook', ${other}), ('email', 'past@queued.test')) k (kind, target)`;
    await session`analyze deliveries`;
    for (let run = 0; run < 8; run++) {
      await claimDeliveries(session, { ...webhooks, limit: 2 });
      await claimDeliveries(session, { ...emails, limit: 2 });
    }
    const [history] = await session<{ last: string }[]>`select max(id)::text as last from outbox`;
    await session`
      insert into outbox (organization_id, type, payload, dispatched_at)
      select ${orgId}, 'member.updated', '{}'::jsonb, now() from generate_series(1, ${QUEUED})`;
    // In one statement, as dispatch writes them: one next_attempt_at for all. The busy endpoint's
    // and the webhook deliveries come first by id, ahead of the other endpoint's and the emails.
    await session`
      insert into deliveries (organization_id, event_id, kind, target)
      select organization_id, id, kind, coalesce(target, 'to' || id || '@queued.test') from outbox,
        (values (1, 'webhook', ${busy}), (2, 'webhook', ${other}), (3, 'email', null)) k (n, kind, target)
      where id > ${history!.last}
      order by k.n, id`;
  });
  afterAll(async () => {
    session.release();
    await ctx.database.close();
  });

  it('two endpoints with free slots: the oldest of each, reading a few rows', async () => {
    const { claims, rowsRead } = await rowsReadClaiming({ ...webhooks, limit: 4 });
    expect(claims.map((c) => c.delivery.target).sort()).toEqual([busy, busy, other, other].sort());
    expect(rowsRead).toBeLessThan(20);
  });

  it("a full endpoint's queue is passed over without reading it", async () => {
    const { claims, rowsRead } = await rowsReadClaiming({ ...webhooks, limit: 2, targetSlots: new Map([[busy, 0]]) });
    expect(claims.map((c) => c.delivery.target)).toEqual([other, other]);
    expect(rowsRead).toBeLessThan(20);
  });

  it('so is the queue of an endpoint whose circuit is open', async () => {
    await session`
      update webhook_endpoints set consecutive_failures = 5, circuit_open_until = now() + interval '1 hour'
      where id = ${busy}`;
    const breaker = { failures: 5, cooldownMs: 60_000 };
    const outcome = await rowsReadClaiming({ ...webhooks, limit: 2, breaker });
    await session`update webhook_endpoints set consecutive_failures = 0, circuit_open_until = null where id = ${busy}`;
    expect(outcome.claims.map((c) => c.delivery.target)).toEqual([other, other]);
    expect(outcome.rowsRead).toBeLessThan(20);
  });

  it('an email claim reads no webhook delivery on its way', async () => {
    const { claims, rowsRead } = await rowsReadClaiming({ ...emails, limit: 2 });
    expect(claims.map((c) => c.delivery.kind)).toEqual(['email', 'email']);
    expect(rowsRead).toBeLessThan(20);
  });
});
