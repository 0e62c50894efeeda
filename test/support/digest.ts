import type { Sql } from '../../src/storage/database.ts';

/**
 * Columns a refused request may still touch: using a credential or a session records when, and
 * every SCIM request, refused or not, is in its token's request log and takes a token from its
 * token's rate-limit bucket.
 */
const VOLATILE: Record<string, string[]> = {
  credentials: ['last_used_at'],
  sessions: ['last_seen_at'],
};
const SKIPPED = new Set(['scim_requests', 'scim_rate_buckets', 'schema_migrations']);

/**
 * One hash over every row of every table of the test's database (each test file has its own),
 * so "a refused request changes nothing" is a comparison of two digests.
 */
export async function databaseDigest(sql: Sql): Promise<string> {
  const columns = await sql<{ table: string; column: string }[]>`
    select table_name as table, column_name as column from information_schema.columns
    where table_schema = 'public' order by table_name, ordinal_position`;
  const tables = new Map<string, string[]>();
  for (const { table, column } of columns) {
    if (SKIPPED.has(table) || VOLATILE[table]?.includes(column)) continue;
    tables.set(table, [...(tables.get(table) ?? []), column]);
  }
  const parts = [...tables].map(([table, cols]) => {
    const row = `row(${cols.map((c) => `t.${quote(c)}`).join(', ')})::text`;
    return `select ${literal(table)} || ':' || coalesce(md5(string_agg(${row}, ',' order by ${row})), '') as d from ${quote(table)} t`;
  });
  const [result] = await sql.unsafe<{ digest: string }[]>(
    `select md5(string_agg(d, '|' order by d)) as digest from (${parts.join(' union all ')}) x`,
  );
  return result!.digest;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
