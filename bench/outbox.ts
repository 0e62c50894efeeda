import { systemActor } from '../src/core/actor.ts';
import type { Fragment, Sql } from '../src/storage/database.ts';
import { createWebhookEndpoint } from '../src/core/webhook-endpoints.ts';
import { startWebhookReceiver } from '../test/support/webhook-receiver.ts';
import { user } from './scim.ts';
import {
  BENCH_SECRET,
  benchDatabase,
  benchOrganization,
  client,
  CONCURRENCY,
  runTimed,
  startServer,
  stopServer,
} from './support.ts';

/**
 * Outbox lag under W1: CREATES SCIM user creates at CONCURRENCY against a real orgsync process
 * with the reconciler on, as in production (LISTEN/NOTIFY wakes dispatch; the events schedule
 * is the default). The lag of an event is from its insert (`created_at`, the creating
 * transaction's time) to its dispatch (`dispatched_at`, taken when the dispatch batch marks it).
 * Also counts node-cron overlap warnings and reconciler job failures in orgsync's log.
 *
 * Run twice: as an organization without webhooks (its events that nothing acts on are written
 * dispatched; the rest wait for the role-mapping handler), and with a webhook endpoint subscribed
 * to every event, on a receiver on loopback that answers 204: then every event is dispatched to a
 * delivery, and the second lag runs from the event's insert to its delivery's success.
 */
const CREATES = Number(process.env.BENCH_LAG_CREATES ?? 5_000);
const DRAINED_WITHIN_MS = 120_000;

export async function benchOutbox(): Promise<string[]> {
  return [await lagRun(false), await lagRun(true)];
}

async function lagRun(webhook: boolean): Promise<string> {
  const db = await benchDatabase();
  const receiver = webhook ? await startWebhookReceiver() : null;
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  const warnings = { overlap: 0, failed: 0 };
  try {
    const { organization, token } = await benchOrganization(db.sql);
    if (receiver)
      await createWebhookEndpoint(
        db.sql,
        BENCH_SECRET,
        { organizationId: organization.id, url: receiver.url },
        systemActor('cli'),
        { allowPrivateNetworks: true },
      );
    server = await startServer(db.url, { RECONCILER: 'true', WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' }, (line) => {
      if (/still running|overlap/i.test(line)) warnings.overlap += 1;
      if (line.includes('reconciler job failed')) warnings.failed += 1;
    });
    const scim = client(server.port, token.secret);
    const [start] = await db.sql<{ from: string }[]>`select coalesce(max(id), 0)::text as from from outbox`;
    const from = start!.from;
    const started = performance.now();
    await runTimed(CREATES, (i) => scim('POST', '/Users', user(i), 201));
    const createMs = Math.round(performance.now() - started);
    for (let waited = 0; ; waited += 100) {
      const [{ left }] = (await db.sql`
        select ((select count(*) from outbox where id > ${from} and dispatched_at is null)
          + (select count(*) from deliveries where event_id > ${from} and status <> 'delivered'))::int as left`) as unknown as [
        { left: number },
      ];
      if (left === 0) break;
      if (waited > DRAINED_WITHIN_MS) throw new Error(`${left} events or deliveries still pending after 2 minutes`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const dispatched = await lagOf(db.sql, from, db.sql`o.dispatched_at`, db.sql`outbox o`);
    const columns = `${dispatched.events} events in ${createMs} ms | ${figures(dispatched)}`;
    const cron = `${warnings.overlap} | ${warnings.failed}`;
    if (!receiver)
      return `| ${CREATES} SCIM creates at concurrency ${CONCURRENCY}, reconciler on, no webhook | ${columns} | – | ${cron} |`;
    const delivered = await lagOf(
      db.sql,
      from,
      db.sql`d.delivered_at`,
      db.sql`outbox o join deliveries d on d.organization_id = o.organization_id and d.event_id = o.id`,
    );
    const received = `${receiver.received.length} received: ${figures(delivered)}`;
    return `| ${CREATES} SCIM creates at concurrency ${CONCURRENCY}, reconciler on, a webhook on loopback | ${columns} | ${received} | ${cron} |`;
  } finally {
    await stopServer(server?.child);
    await receiver?.close();
    await db.drop();
  }
}

interface Lag {
  events: number;
  p50: number;
  p99: number;
  max: number;
}

/** The lag from each event's insert to `until`, over `rows` (the outbox aliased o) of the events after `from`. */
async function lagOf(sql: Sql, from: string, until: Fragment, rows: Fragment): Promise<Lag> {
  const [lag] = await sql<Lag[]>`
    select count(*)::int as events,
      round(percentile_cont(0.5) within group (order by ms))::int as p50,
      round(percentile_cont(0.99) within group (order by ms))::int as p99,
      round(max(ms))::int as max
    from (select extract(epoch from ${until} - o.created_at) * 1000 as ms from ${rows} where o.id > ${from}) l`;
  return lag!;
}

const figures = (lag: Lag) => `p50 ${lag.p50} ms, p99 ${lag.p99} ms, max ${lag.max} ms`;
