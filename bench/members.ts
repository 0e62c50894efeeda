import postgres from 'postgres';
import { encodeCursor, listMembers, MEMBER_SORTS, type MemberListQuery } from '../src/core/member-directory.ts';
import type { Sql } from '../src/storage/database.ts';
import { benchDatabase } from './support.ts';

const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 100_000);
const INVITED = Math.round(MEMBERS / 20);
const RUNS = 7;
const GIVEN = [
  'Ann',
  'Bob',
  'Carla',
  'Dave',
  'Eve',
  'Frank',
  'Grace',
  'Hugo',
  'Ines',
  'Jon',
  'Kim',
  'Lena',
  'Mo',
  'Nina',
];
const FAMILY = ['Lee', 'Stone', 'Moss', 'Ohara', 'Novak', 'Schmidt', 'Garcia', 'Kowalski', 'Nguyen', 'Smith', 'Rossi'];

/**
 * The members list (GET /api/members, core/member-directory.listMembers) in one organization of
 * MEMBERS members (5% suspended, never-active and ties everywhere) plus MEMBERS/20 pending
 * invitations, beside a second organization of 10,000: each sort's first page both ways, a deep
 * keyset page (past 90% of the list), prefix searches and the invitations tab. Every call is a
 * page and its total, as the API answers; the median of RUNS runs. Also prints the EXPLAIN
 * (ANALYZE, BUFFERS) of the main statements.
 */
export async function benchMembers(): Promise<string[]> {
  const db = await benchDatabase();
  // A client of its own that records each statement with its parameters, to EXPLAIN it.
  let seen: { query: string; params: unknown[] }[] = [];
  const sql = postgres(db.url, {
    max: 4,
    onnotice: () => {},
    transform: { column: { from: postgres.toCamel } },
    debug: (_c: number, query: string, params: unknown[]) => seen.push({ query, params }),
  }) as unknown as Sql;
  try {
    const orgId = await seed(db.sql);
    const rows: string[] = [];
    const plans: string[] = [];
    const time = async (label: string, query: MemberListQuery, explain = false) => {
      const ms: number[] = [];
      let result: Awaited<ReturnType<typeof listMembers>> | undefined;
      for (let i = 0; i < RUNS; i++) {
        seen = [];
        const started = performance.now();
        result = await listMembers(sql, orgId, query);
        ms.push(performance.now() - started);
      }
      ms.sort((x, y) => x - y);
      rows.push(
        `| ${label} | ${result!.items.length} rows of ${result!.total.toLocaleString('en')} | ${ms[RUNS >> 1]!.toFixed(1)} ms | ${ms[RUNS - 1]!.toFixed(1)} ms |`,
      );
      if (explain)
        for (const { query: text, params } of seen) {
          const plan = await db.sql.unsafe(`explain (analyze, buffers, costs off) ${text}`, params as never[]);
          plans.push(`-- ${label}\n${plan.map((r) => Object.values(r)[0]).join('\n')}`);
        }
    };

    for (const sort of MEMBER_SORTS)
      for (const order of ['asc', 'desc'] as const)
        await time(`first page, sort=${sort} ${order}`, { sort, order, limit: 50 }, sort === 'name' && order === 'asc');
    for (const sort of MEMBER_SORTS) {
      const after = await deepCursor(db.sql, orgId, sort);
      await time(`page after row 90% (keyset), sort=${sort}`, { sort, after, limit: 50 }, sort === 'lastActive');
    }
    await time('search q=smi (family name prefix; 1 in 11)', { search: 'smi', limit: 50 }, true);
    await time('search q=user4242 (email prefix, rare)', { search: 'user4242', sort: 'email', limit: 50 }, true);
    await time('search q=grace novak (full name prefix)', { search: 'grace novak', limit: 50 });
    await time('status=suspended, sort=joined desc', { status: 'suspended', sort: 'joined', order: 'desc', limit: 50 });
    await time('tab=invitations, sort=email', { tab: 'invitations', sort: 'email', limit: 50 }, true);
    console.error(plans.join('\n\n'));
    return rows;
  } finally {
    await sql.end();
    await db.drop();
  }
}

async function seed(sql: Sql): Promise<string> {
  const [org] = await sql`insert into organizations (name, slug) values ('Bench', 'bench') returning id`;
  const [other] = await sql`insert into organizations (name, slug) values ('Other', 'other') returning id`;
  await sql`
    insert into accounts (email, given_name, family_name)
    select 'user' || i || '@bench.test',
      case when i % 50 = 0 then null else (${GIVEN}::text[])[1 + i % ${GIVEN.length}] end,
      case when i % 50 = 0 then null else (${FAMILY}::text[])[1 + (i / 7) % ${FAMILY.length}] end
    from generate_series(1, ${MEMBERS + INVITED + 10_000}) i`;
  // Joined in batches of 100 at the same instant (ties), active half of them (ties again to the second).
  await sql`
    insert into memberships (organization_id, account_id, status, source, created_at, last_active_at)
    select case when n > ${MEMBERS + INVITED} then ${other!.id}::uuid else ${org!.id}::uuid end, id,
      case when n > ${MEMBERS} and n <= ${MEMBERS + INVITED} then 'invited' when n % 20 = 0 then 'suspended' else 'active' end,
      'scim', timestamptz '2025-01-01' + (n / 100) * interval '1 minute',
      case when n % 2 = 0 then timestamptz '2026-01-01' + (n % 5000) * interval '1 second' end
    from (select id, row_number() over (order by email) as n from accounts) a`;
  await sql`vacuum analyze`;
  return org!.id as string;
}

/** The cursor of the row at 90% of the members tab in this sort (as the 1,800th page would end). */
async function deepCursor(sql: Sql, orgId: string, sort: (typeof MEMBER_SORTS)[number]): Promise<string> {
  const key = {
    name: sql`name_key`,
    email: sql`email_key`,
    status: sql`status`,
    joined: sql`created_at`,
    lastActive: sql`coalesce(last_active_at, '-infinity'::timestamptz)`,
  }[sort];
  const [row] = await sql<{ key: string; id: string }[]>`
    select ${key}::text as key, account_id as id from memberships
    where organization_id = ${orgId} and list_tab = 'members'
    order by ${key}, account_id offset ${Math.floor(MEMBERS * 0.9)} limit 1`;
  return encodeCursor({ sort, order: 'asc', key: row!.key, id: row!.id });
}
