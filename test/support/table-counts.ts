import type { Db } from '../../src/storage/database.ts';

/** What this session has done to one table so far, rows read among it. */
export interface TableCounts {
  seqScans: number;
  rowsRead: number;
  inserted: number;
  deleted: number;
}

/**
 * A table's counts from PostgreSQL's per-transaction statistics (pg_stat_xact_user_tables): read
 * before and after a statement in one transaction, their difference is what the statement did,
 * without timing. (The session keeps the counts of earlier transactions until it reports them, so
 * only a difference within one transaction says something.)
 */
export async function tableCounts(sql: Db, table: string): Promise<TableCounts> {
  const [row] = await sql<
    { seqScan: string; seqTupRead: string; idxTupFetch: string; nTupIns: string; nTupDel: string }[]
  >`
    select seq_scan, seq_tup_read, coalesce(idx_tup_fetch, 0) as idx_tup_fetch, n_tup_ins, n_tup_del
    from pg_stat_xact_user_tables where relname = ${table}`;
  return {
    seqScans: Number(row!.seqScan),
    rowsRead: Number(row!.seqTupRead) + Number(row!.idxTupFetch),
    inserted: Number(row!.nTupIns),
    deleted: Number(row!.nTupDel),
  };
}

/** `after` minus `before`, field by field. */
export function countsBetween(before: TableCounts, after: TableCounts): TableCounts {
  return {
    seqScans: after.seqScans - before.seqScans,
    rowsRead: after.rowsRead - before.rowsRead,
    inserted: after.inserted - before.inserted,
    deleted: after.deleted - before.deleted,
  };
}

/**
 * An organization's counters summed over their shards (migrations 094, 111, 117, 118), beside the
 * rows they count: SCIM users, and listed memberships.
 */
export async function countersAndRows(sql: Db, organizationId: string) {
  const [row] = await sql<{ counted: number; users: number; members: number; listed: number }[]>`
    select (select sum(n)::int from scim_user_counts where organization_id = ${organizationId}) as counted,
           (select count(*)::int from scim_users where organization_id = ${organizationId}) as users,
           (select sum(n)::int from member_counts where organization_id = ${organizationId}) as members,
           (select count(*)::int from memberships where organization_id = ${organizationId} and list_tab is not null) as listed`;
  return row!;
}

/** Deadlocks PostgreSQL has settled in this database so far (pg_stat_database). */
export async function deadlocksSoFar(sql: Db): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select deadlocks::int as n from pg_stat_database where datname = current_database()`;
  return row!.n;
}
