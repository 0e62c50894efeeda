import type { ChildProcess } from 'node:child_process';
import { user } from './scim.ts';
import {
  benchDatabase,
  benchOrganization,
  client,
  processCpuMs,
  runTimed,
  startServer,
  stopServer,
} from './support.ts';

/**
 * SCIM /Bulk against single requests, on a real orgsync process: BULK_CREATES users created by
 * single POST /Users one after another from one client (each waits for the previous answer), the
 * same number by single POSTs with BULK_CONCURRENCY in flight, and the same number in one POST
 * /Bulk (whose independent creates the server runs SCIM_BULK_CONCURRENCY at once). Each
 * workload creates users of its own; the server's CPU per user is from /proc.
 */
const CREATES = Number(process.env.BENCH_BULK_CREATES ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_BULK_CONCURRENCY ?? 4);

export async function benchBulk(): Promise<string[]> {
  const db = await benchDatabase();
  let server: ChildProcess | undefined;
  try {
    const { token } = await benchOrganization(db.sql);
    const started = await startServer(db.url, {
      SCIM_BULK_CONCURRENCY: String(CONCURRENCY),
      DATABASE_POOL_MAX: String(CONCURRENCY + 4),
    });
    server = started.child;
    const pid = server.pid!;
    const scim = client(started.port, token.secret);
    // Warms the server up (module compilation under tsx, the token cache) outside the figures.
    await scim('POST', '/Users', user(10_000_000), 201);

    const measure = async (name: string, first: number, run: (offset: number) => Promise<void>) => {
      const cpuBefore = processCpuMs(pid);
      const startedAt = performance.now();
      await run(first);
      const ms = performance.now() - startedAt;
      const cpu = (processCpuMs(pid) - cpuBefore) / CREATES;
      return { name, ms, cpu };
    };
    const singles = (inFlight: number) => async (offset: number) => {
      await runTimed(CREATES, (i) => scim('POST', '/Users', user(offset + i), 201), inFlight);
    };
    const results = [
      await measure(`${CREATES} × POST /Users, one at a time`, 0, singles(1)),
      await measure(`${CREATES} × POST /Users, ${CONCURRENCY} in flight`, CREATES, singles(CONCURRENCY)),
      await measure(`one POST /Bulk of ${CREATES} creates`, 2 * CREATES, async (offset) => {
        const operations = Array.from({ length: CREATES }, (_, i) => ({
          method: 'POST',
          path: '/Users',
          bulkId: `u${i}`,
          data: user(offset + i),
        }));
        const answer = (await scim(
          'POST',
          '/Bulk',
          { schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'], Operations: operations },
          200,
        )) as { Operations: { status: string }[] };
        const failed = answer.Operations.filter((o) => o.status !== '201');
        if (failed.length > 0) throw new Error(`${failed.length} bulk operations failed`);
      }),
    ];
    const bulk = results[2]!;
    return results.map(
      (r) =>
        `| ${r.name} | ${Math.round(r.ms)} ms | ${Math.round((CREATES * 1000) / r.ms)}/s | ${r.cpu.toFixed(2)} ms | ${
          r === bulk ? '1×' : `${(r.ms / bulk.ms).toFixed(1)}×`
        } |`,
    );
  } finally {
    await stopServer(server);
    await db.drop();
  }
}
