import type { Sql } from './database.ts';

/**
 * What autovacuum would do for orgsync's tables, done where it is off (on the server, or for one
 * table). Without ANALYZE a prepared statement keeps the plan it got while its tables were small,
 * for good: a lookup planned on a new database can walk an index that grows with the data.
 * Without VACUUM no page becomes all-visible, so an index-only scan (a deep SCIM list page) still
 * reads the table, and dead rows pile up. So each table past autovacuum's own thresholds (the
 * server's `autovacuum_*` settings: dead rows, rows inserted, rows changed since the last
 * ANALYZE) is vacuumed and analyzed, or only analyzed. Where autovacuum is on it does nothing:
 * PostgreSQL does this itself.
 */
export async function maintainTables(sql: Sql): Promise<{ vacuumed: string[]; analyzed: string[] }> {
  // A VACUUM runs for a while (or waits on a lock): on a connection of its own, so no statement is
  // pipelined behind it (postgres.js sends one to a busy connection when none is idle).
  const db = await sql.reserve();
  try {
    return await maintainOn(db);
  } finally {
    db.release();
  }
}

/**
 * Autovacuum pauses its work (`autovacuum_vacuum_cost_delay` after each `autovacuum_vacuum_cost_limit`
 * of cost, each -1 for the plain vacuum_cost_* setting) so as not to starve the server's other
 * sessions; a VACUUM or ANALYZE on a session does not, unless told to. Without it, a large table's
 * VACUUM took a core from the requests of the moment (a lookup burst at half its rate).
 */
export async function throttleLikeAutovacuum(db: Sql): Promise<void> {
  const autovacuum = (name: string) =>
    db`case when current_setting(${`autovacuum_${name}`}) ~ '^-1' then current_setting(${name}) else current_setting(${`autovacuum_${name}`}) end`;
  await db`
    select set_config('vacuum_cost_delay', ${autovacuum('vacuum_cost_delay')}, false),
           set_config('vacuum_cost_limit', ${autovacuum('vacuum_cost_limit')}, false)`;
}

async function maintainOn(db: Sql): Promise<{ vacuumed: string[]; analyzed: string[] }> {
  const setting = (name: string) => db`current_setting(${name})::float8`;
  // The table's rows as its statistics know them (-1 before its first VACUUM or ANALYZE).
  const rows = db`greatest(c.reltuples, 0)`;
  const due = await db<{ name: string; needsVacuum: boolean }[]>`
    select name, needs_vacuum from (
      select s.relname as name,
        s.n_dead_tup > ${setting('autovacuum_vacuum_threshold')} + ${setting('autovacuum_vacuum_scale_factor')} * ${rows}
          or s.n_ins_since_vacuum > ${setting('autovacuum_vacuum_insert_threshold')}
            + ${setting('autovacuum_vacuum_insert_scale_factor')} * ${rows} as needs_vacuum,
        s.n_mod_since_analyze > ${setting('autovacuum_analyze_threshold')}
          + ${setting('autovacuum_analyze_scale_factor')} * ${rows} as needs_analyze
      from pg_stat_user_tables s join pg_class c on c.oid = s.relid
      where s.schemaname = current_schema()
        and (current_setting('autovacuum') = 'off' or c.reloptions @> array['autovacuum_enabled=false'])
    ) t where needs_vacuum or needs_analyze
    order by name`;
  if (due.length > 0) {
    await throttleLikeAutovacuum(db);
    try {
      for (const table of due) {
        if (table.needsVacuum) await db`vacuum (analyze) ${db(table.name)}`;
        else await db`analyze ${db(table.name)}`;
      }
    } finally {
      // The connection goes back to the pool: only these were to be throttled.
      await db`reset vacuum_cost_delay`.catch(() => {});
      await db`reset vacuum_cost_limit`.catch(() => {});
    }
  }
  return { vacuumed: due.filter((t) => t.needsVacuum).map((t) => t.name), analyzed: due.map((t) => t.name) };
}
