import { vi } from 'vitest';
import type { Sql } from '../../src/storage/database.ts';

/**
 * Helpers for showing lock order without timing: a test holds a lock in an open transaction,
 * starts a write, waits until the write's backend waits on a lock (pg_stat_activity) or the write
 * has ended, and looks at what the write holds meanwhile.
 */

/** A write started at once, and whether it has ended yet. */
export function started<T>(write: PromiseLike<T>) {
  const tracked = { settled: false, result: Promise.resolve(write) };
  void tracked.result.finally(() => (tracked.settled = true)).catch(() => {});
  return tracked;
}

/** Until the write has ended, or a backend of `sql`'s database waits on a lock (of `event`, when given). */
export async function untilWaitingOrEnded(sql: Sql, write: { settled: boolean }, event?: string): Promise<void> {
  await vi.waitUntil(
    async () => {
      if (write.settled) return true;
      const [row] = await sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock'
          and (${event ?? null}::text is null or wait_event = ${event ?? null})`;
      return row!.n > 0;
    },
    { timeout: 10_000, interval: 10 },
  );
}
