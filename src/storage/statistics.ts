import type { Db } from './database.ts';

/**
 * The planner's statistics of orgsync's tables, kept fresh where autovacuum is off (on the
 * server, or for one table), which also stops its ANALYZE. A prepared statement keeps the plan it
 * got while its tables were small, and only an ANALYZE of them makes it plan again: without one,
 * a lookup planned on a new database can walk an index that grows with the data, for good. So
 * this analyzes each table of the schema changed by more rows than autovacuum's own threshold
 * would let pass (`autovacuum_analyze_threshold` + `autovacuum_analyze_scale_factor` × rows).
 * Where autovacuum is on it does nothing: PostgreSQL does this itself. Answers the tables analyzed.
 */
export async function analyzeStaleTables(db: Db): Promise<string[]> {
  const stale = await db<{ name: string }[]>`
    select s.relname as name from pg_stat_user_tables s join pg_class c on c.oid = s.relid
    where s.schemaname = current_schema()
      and (current_setting('autovacuum') = 'off' or c.reloptions @> array['autovacuum_enabled=false'])
      and s.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8
        + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0)
    order by s.n_mod_since_analyze desc`;
  for (const { name } of stale) await db`analyze ${db(name)}`;
  return stale.map((t) => t.name);
}
