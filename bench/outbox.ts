import { user } from './scim.ts';
import { benchDatabase, benchOrganization, client, CONCURRENCY, runTimed, startServer, stopServer } from './support.ts';

/**
 * Outbox lag under W1: CREATES SCIM user creates at CONCURRENCY against a real orgsync process
 * with the reconciler on, as in production (LISTEN/NOTIFY wakes dispatch; the events schedule
 * is the default). The lag of an event is from its insert (`created_at`, the creating
 * transaction's time) to its dispatch (`dispatched_at`, taken when the dispatch batch marks it).
 * Also counts node-cron overlap warnings and reconciler job failures in orgsync's log.
 */
const CREATES = Number(process.env.BENCH_LAG_CREATES ?? 5_000);

export async function benchOutbox(): Promise<string[]> {
  const db = await benchDatabase();
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  const warnings = { overlap: 0, failed: 0 };
  try {
    const { token } = await benchOrganization(db.sql);
    server = await startServer(db.url, { RECONCILER: 'true' }, (line) => {
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
        select count(*)::int as left from outbox where id > ${from} and dispatched_at is null`) as unknown as [
        { left: number },
      ];
      if (left === 0) break;
      if (waited > 120_000) throw new Error(`${left} events still undispatched after 2 minutes`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const [lag] = await db.sql<{ events: number; p50: number; p99: number; max: number }[]>`
      select count(*)::int as events,
        round(percentile_cont(0.5) within group (order by ms))::int as p50,
        round(percentile_cont(0.99) within group (order by ms))::int as p99,
        round(max(ms))::int as max
      from (select extract(epoch from dispatched_at - created_at) * 1000 as ms from outbox where id > ${from}) l`;
    return [
      `| ${CREATES} SCIM creates at concurrency ${CONCURRENCY}, reconciler on | ${lag!.events} events in ${createMs} ms | ${lag!.p50} ms | ${lag!.p99} ms | ${lag!.max} ms | ${warnings.overlap} | ${warnings.failed} |`,
    ];
  } finally {
    await stopServer(server?.child);
    await db.drop();
  }
}
