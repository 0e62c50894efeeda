import { Writable } from 'node:stream';
import type { Express } from 'express';
import { pino } from 'pino';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import type { Actor } from '../../src/core/actor.ts';
import { createWebhookEndpoint } from '../../src/core/webhook-endpoints.ts';
import { createApp } from '../../src/app.ts';
import { connect } from '../../src/storage/database.ts';
import { claimEvents, type EventHandler } from '../../src/sync/outbox.ts';
import { Reconciler } from '../../src/sync/reconciler.ts';
import { recomputeRolesOnEvents } from '../../src/sync/roles.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';

const admin: Actor = { type: 'admin_key', id: 'k', name: 'key', channel: 'admin' };
let ctx: AppContext;
let app: Express;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let a: Awaited<ReturnType<typeof createTestOrganization>>;
let b: Awaited<ReturnType<typeof createTestOrganization>>;
const logs: Record<string, unknown>[] = [];
const pools: AppContext['sql'][] = [];

// A handler with a deterministic bug: it throws on any batch holding a "poison" event while the
// cause is there (as a real bug would until it is fixed).
let causePresent = true;
const poisonHandler: EventHandler = (_tx, events) => {
  if (causePresent && events.some((e) => e.payload.poison === true))
    return Promise.reject(new Error('handler bug: cannot read poison'));
  return Promise.resolve();
};

const reconcilerOn = (c: AppContext) => new Reconciler(c, [recomputeRolesOnEvents, poisonHandler]);

beforeAll(async () => {
  // Backoff is long here so a retry never comes due by itself; tests make it due by hand.
  ctx = await createTestContext({
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    DELIVERY_BACKOFF_MS: '60000',
    DELIVERY_MAX_ATTEMPTS: '3',
  });
  const sink = new Writable({ write: (chunk, _enc, done) => (logs.push(JSON.parse(String(chunk))), done()) });
  ctx = { ...ctx, log: pino({ level: 'warn' }, sink) };
  app = createApp(ctx);
  receiver = await startWebhookReceiver();
  a = await createTestOrganization(ctx, 'poison-a');
  b = await createTestOrganization(ctx, 'poison-b');
  for (const org of [a, b])
    await createWebhookEndpoint(
      ctx.sql,
      ctx.config.serverSecret,
      { organizationId: org.organization.id, url: receiver.url },
      admin,
      { allowPrivateNetworks: true },
    );
  await reconcilerOn(ctx).events(); // the organizations' own events
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await receiver.close();
  await ctx.database.close();
});
beforeEach(() => {
  receiver.received.length = 0;
});

async function addEvent(orgId: string, payload: Record<string, unknown> = {}): Promise<string> {
  const [row] =
    await ctx.sql`insert into outbox (organization_id, type, payload) values (${orgId}, 'group.created', ${ctx.sql.json(payload as never)}) returning id`;
  return String(row!.id);
}
async function outboxRow(id: string) {
  const [row] = await ctx.sql`
    select dispatched_at, dispatch_attempts, dispatch_error, dispatch_failed_at,
           extract(epoch from dispatch_retry_at - now()) as retry_in_s
    from outbox where id = ${id}`;
  return row!;
}
/** Lets the backoff pass for an event. */
const makeDue = (id: string) => ctx.sql`update outbox set dispatch_retry_at = now() where id = ${id}`;
const as = (key: string) => ({ authorization: `Bearer ${key}` });

describe('an event whose handler fails', () => {
  let poison: string;

  it('does not block the others: they are dispatched and delivered; it is retried with backoff, then set aside', async () => {
    const a1 = await addEvent(a.organization.id);
    poison = await addEvent(a.organization.id, { poison: true, sealed: { token: 'SECRET' } });
    const a2 = await addEvent(a.organization.id);
    const b1 = await addEvent(b.organization.id);
    const reconciler = reconcilerOn(ctx);

    expect(await reconciler.events()).toMatchObject({
      eventsDispatched: 3,
      eventsRetrying: 1,
      eventsFailed: 0,
      delivered: 3,
    });
    expect(receiver.delivered().sort()).toEqual([a1, a2, b1].sort());
    const first = await outboxRow(poison);
    expect(first).toMatchObject({
      dispatchedAt: null,
      dispatchAttempts: 1,
      dispatchError: 'handler bug: cannot read poison',
      dispatchFailedAt: null,
    });
    expect(Number(first.retryInS)).toBeGreaterThan(45); // 60 s ± 20 %
    expect(logs.some((l) => l.level === 40 && l.eventId === poison)).toBe(true);
    const retrying = await request(app).get('/api/events?status=retrying').set(as(a.adminKey)).expect(200);
    expect(retrying.body.items.map((e: { id: string }) => e.id)).toEqual([poison]);

    // Not due yet: untouched, while a new event goes through.
    const a3 = await addEvent(a.organization.id);
    expect(await reconciler.events()).toMatchObject({ eventsDispatched: 1, eventsRetrying: 0 });
    expect((await outboxRow(poison)).dispatchAttempts).toBe(1);
    expect(receiver.delivered()).toContain(a3);

    await makeDue(poison);
    expect(await reconciler.events()).toMatchObject({ eventsRetrying: 1 });
    const second = await outboxRow(poison);
    expect(second.dispatchAttempts).toBe(2);
    expect(Number(second.retryInS)).toBeGreaterThan(90); // doubled: 120 s ± 20 %

    await makeDue(poison);
    expect(await reconciler.events()).toMatchObject({ eventsRetrying: 0, eventsFailed: 1 });
    expect(await outboxRow(poison)).toMatchObject({
      dispatchedAt: null,
      dispatchAttempts: 3,
      dispatchFailedAt: expect.any(Date),
      retryInS: null,
    });
    expect(logs.some((l) => l.level === 50 && l.eventId === poison && l.organizationId === a.organization.id)).toBe(
      true,
    );
    const audit =
      await ctx.sql`select organization_id, actor_name, target_id, details from audit_log where action = 'event.dispatch_failed'`;
    expect(audit).toEqual([
      {
        organizationId: a.organization.id,
        actorName: 'reconciler',
        targetId: poison,
        details: { eventType: 'group.created', attempts: 3, error: 'handler bug: cannot read poison' },
      },
    ]);

    // Failed: no longer tried, and nothing was ever delivered for it.
    await makeDue(poison);
    expect(await reconciler.events()).toMatchObject({ eventsDispatched: 0, eventsRetrying: 0, eventsFailed: 0 });
    expect((await outboxRow(poison)).dispatchAttempts).toBe(3);
    expect(await ctx.sql`select 1 from deliveries where event_id = ${poison}`).toHaveLength(0);
    expect(receiver.received.map((r) => r.eventId)).not.toContain(poison);
  });

  it('is listed for its organization only and, once the cause is gone, a retry dispatches and delivers it', async () => {
    const list = await request(app).get('/api/events?status=failed').set(as(a.adminKey)).expect(200);
    expect(list.body.items).toEqual([
      expect.objectContaining({
        id: poison,
        type: 'group.created',
        attempts: 3,
        lastError: 'handler bug: cannot read poison',
        data: { poison: true },
      }),
    ]);
    expect(JSON.stringify(list.body)).not.toContain('SECRET');
    expect((await request(app).get('/api/events').set(as(b.adminKey)).expect(200)).body.items).toEqual([]);
    expect((await request(app).post('/api/events/retry').set(as(b.adminKey)).send({}).expect(200)).body.retried).toBe(
      0,
    );
    await request(app).get('/api/events?status=dispatched').set(as(a.adminKey)).expect(400);

    causePresent = false;
    try {
      expect(
        (
          await request(app)
            .post('/api/events/retry')
            .set(as(a.adminKey))
            .send({ ids: [poison] })
            .expect(200)
        ).body.retried,
      ).toBe(1);
      expect(
        await ctx.sql`select 1 from audit_log where action = 'events.retried' and organization_id = ${a.organization.id}`,
      ).toHaveLength(1);
      expect(await reconcilerOn(ctx).events()).toMatchObject({ eventsDispatched: 1, delivered: 1 });
    } finally {
      causePresent = true;
    }
    expect((await outboxRow(poison)).dispatchedAt).toBeInstanceOf(Date);
    expect(receiver.delivered()).toEqual([poison]);
    expect((await request(app).get('/api/events').set(as(a.adminKey)).expect(200)).body.items).toEqual([]);
  });
});

// Several instances need a real PostgreSQL; the embedded one is a single session in one process.
describe.skipIf(!process.env.DATABASE_URL)('two instances with failing events among the others', () => {
  it('deliver every other event exactly once and try a failing one once per backoff', async () => {
    const two = [0, 1].map(() => {
      const sql = connect((ctx.database as unknown as { url: string }).url, 4);
      pools.push(sql);
      return reconcilerOn({ ...ctx, sql, database: { ...ctx.database, sql } });
    });
    const good: string[] = [];
    const poisons: string[] = [];
    for (let i = 0; i < 60; i++) {
      const org = i % 2 ? a : b;
      if (i === 7 || i === 41) poisons.push(await addEvent(org.organization.id, { poison: true }));
      else good.push(await addEvent(org.organization.id));
    }
    for (let round = 0; round < 3; round++) {
      await Promise.all(two.map((r) => r.events()));
      for (const p of poisons) await makeDue(p);
    }
    const delivered = receiver.delivered();
    expect(delivered.sort()).toEqual([...good].sort());
    expect(receiver.received).toHaveLength(good.length);
    for (const p of poisons)
      expect(await outboxRow(p)).toMatchObject({ dispatchAttempts: 3, dispatchFailedAt: expect.any(Date) });
  });
});

describe('the dispatch query', () => {
  it('is served by the outbox_undispatched index', async () => {
    const plan = await ctx.sql.begin(async (tx) => {
      await tx`set local enable_seqscan = off`;
      return tx`explain ${claimEvents(tx, 200)}`;
    });
    const text = plan.map((r) => Object.values(r)[0]).join('\n');
    expect(text).toMatch(/Index Only Scan using outbox_undispatched|Index Scan using outbox_undispatched/);
    expect(text).not.toMatch(/Seq Scan/);
  });
});

describe('housekeeping', () => {
  let house: AppContext;
  beforeAll(async () => {
    house = await createTestContext();
  });
  afterAll(async () => house.database.close());

  it('prunes dispatched events past 30 days whose deliveries were all delivered, in batches, and nothing else', async () => {
    const org = (await createTestOrganization(house, 'prune')).organization.id;
    // The organization's own events, made old and dispatched: prunable.
    const setup =
      await house.sql`update outbox set created_at = now() - interval '50 days', dispatched_at = now() - interval '50 days' returning id`;
    const event = async (
      ageDays: number,
      state: 'dispatched' | 'undispatched' | 'failed',
      deliveries: string[] = [],
    ) => {
      const [row] = await house.sql`
        insert into outbox (organization_id, type, payload, created_at, dispatched_at, dispatch_failed_at)
        values (${org}, 'member.joined', '{}', now() - make_interval(days => ${ageDays}),
                ${state === 'dispatched' ? house.sql`now() - make_interval(days => ${ageDays})` : null},
                ${state === 'failed' ? house.sql`now()` : null})
        returning id`;
      for (const status of deliveries) {
        await house.sql`insert into deliveries (organization_id, event_id, kind, target, status)
          values (${org}, ${row!.id}, 'webhook', ${crypto.randomUUID()}, ${status})`;
      }
      return String(row!.id);
    };
    const pruned = [await event(40, 'dispatched', ['delivered', 'delivered']), await event(31, 'dispatched')];
    await house.sql`
      insert into outbox (organization_id, type, payload, created_at, dispatched_at)
      select ${org}, 'member.joined', '{}', now() - interval '35 days', now() - interval '35 days' from generate_series(1, 2500)`;
    const kept = [
      await event(40, 'dispatched', ['pending']),
      await event(40, 'dispatched', ['dead']),
      await event(40, 'dispatched', ['delivered', 'dead']),
      await event(40, 'undispatched'),
      await event(40, 'failed'),
      await event(29, 'dispatched', ['delivered']),
      await event(0, 'dispatched'),
    ];

    const counts = await new Reconciler(house).housekeeping();
    expect(counts).toMatchObject({ eventsPruned: setup.length + pruned.length + 2500, deliveriesPruned: 2 });
    const left = await house.sql`select id from outbox order by id`;
    expect(left.map((r) => String(r.id))).toEqual(kept);
    const deliveries = await house.sql`select event_id, status from deliveries order by id`;
    expect(deliveries.map((d) => [String(d.eventId), d.status])).toEqual([
      [kept[0], 'pending'],
      [kept[1], 'dead'],
      [kept[2], 'delivered'],
      [kept[2], 'dead'],
      [kept[5], 'delivered'],
    ]);
    expect((await new Reconciler(house).housekeeping()).eventsPruned).toBe(0);
  });

  it("prunes delivery attempts past 30 days, in batches, keeping each delivery's latest; a pruned delivery takes its attempts along", async () => {
    const org = (await createTestOrganization(house, 'prune-attempts')).organization.id;
    const delivery = async (eventAgeDays: number, status: string, attemptAgesDays: number[]) => {
      const [event] = await house.sql`
        insert into outbox (organization_id, type, payload, created_at, dispatched_at)
        values (${org}, 'member.joined', '{}', now() - make_interval(days => ${eventAgeDays}),
                now() - make_interval(days => ${eventAgeDays}))
        returning id`;
      const [row] = await house.sql`insert into deliveries (organization_id, event_id, kind, target, status)
        values (${org}, ${event!.id}, 'webhook', ${crypto.randomUUID()}, ${status}) returning id`;
      for (const age of attemptAgesDays)
        await house.sql`insert into delivery_attempts (organization_id, delivery_id, at, response_status)
          values (${org}, ${row!.id}, now() - make_interval(days => ${age}), ${500 + age})`;
      return String(row!.id);
    };
    // A dead letter retried for long: 2,500 old attempts (three batches), then 3 more.
    const dead = await delivery(60, 'dead', []);
    await house.sql`insert into delivery_attempts (organization_id, delivery_id, at, response_status)
      select ${org}, ${dead}, now() - interval '50 days', 503 from generate_series(1, 2500)`;
    await house.sql`insert into delivery_attempts (organization_id, delivery_id, at, response_status)
      values (${org}, ${dead}, now() - interval '40 days', 540), (${org}, ${dead}, now() - interval '29 days', 529),
             (${org}, ${dead}, now() - interval '1 day', 501)`;
    const oldOnly = await delivery(40, 'dead', [45, 40, 35]);
    const pending = await delivery(0, 'pending', [31, 2]);
    const recent = await delivery(0, 'delivered', [29, 28]);
    // Delivered, its event dispatched 40 days ago: pruned with its event, its attempts with it.
    const gone = await delivery(40, 'delivered', [40, 39]);

    const counts = await new Reconciler(house).housekeeping();
    expect(counts.deliveryAttemptsPruned).toBe(2500 + 1 + 2 + 1);
    const left = await house.sql`
      select delivery_id::text as delivery, response_status from delivery_attempts
      where organization_id = ${org} order by delivery_id, id`;
    expect(left.map((a) => [a.delivery, a.responseStatus])).toEqual([
      [dead, 529],
      [dead, 501],
      [oldOnly, 535],
      [pending, 502],
      [recent, 529],
      [recent, 528],
    ]);
    expect(await house.sql`select 1 from deliveries where organization_id = ${org} and id = ${gone}`).toHaveLength(0);
    expect((await new Reconciler(house).housekeeping()).deliveryAttemptsPruned).toBe(0);
  });
});
