import type { RunCoordinator } from 'node-cron';
import type { Sql } from '../storage/database.ts';

/**
 * Lets exactly one instance run each scheduled tick of a job: node-cron asks with the key
 * "<job>:<tick time>", and only the instance whose insert of that key succeeds runs it.
 */
export function postgresRunCoordinator(sql: Sql): RunCoordinator {
  return {
    async shouldRun(key: string): Promise<boolean> {
      const rows = await sql`insert into job_runs (key) values (${key}) on conflict do nothing returning key`;
      return rows.length === 1;
    },
  };
}

/** Claims are only needed around their tick; keep a day for inspection. */
export async function pruneJobRuns(sql: Sql): Promise<number> {
  const rows = await sql`delete from job_runs where claimed_at < now() - interval '1 day' returning key`;
  return rows.length;
}
