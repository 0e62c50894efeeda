import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReservedSql } from 'postgres';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { countsBetween, tableCounts } from './support/table-counts.ts';

/**
 * A prepared statement keeps the generic plan it was given when first run often enough, and a
 * new database's tables look tiny then. These plans are the ones made on a new, empty database:
 * a lookup by key must take an index that finds the key even so, or its cost grows with the
 * table until the next ANALYZE (with autovacuum off, never).
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.close();
});

async function genericPlan(statement: string, parameters: string): Promise<string> {
  return db.sql.begin(async (tx) => {
    await tx`set local plan_cache_mode = force_generic_plan`;
    await tx.unsafe(`prepare planned as ${statement}`);
    const rows = await tx.unsafe<Record<string, string>[]>(`explain execute planned(${parameters})`);
    await tx`deallocate planned`;
    return rows.map((r) => Object.values(r)[0]).join('\n');
  });
}

const ORG = "'00000000-0000-0000-0000-000000000001'::uuid";
const ACCOUNT = "'00000000-0000-0000-0000-000000000002'::uuid";

describe('plans made on an empty database', () => {
  it('a membership looked up by organization and account takes an index that starts at the account', async () => {
    const plan = await genericPlan(
      'select status from memberships where organization_id = $1 and account_id = $2 for update',
      `${ORG}, ${ACCOUNT}`,
    );
    // The primary key (organization_id, account_id) or memberships_account (account_id): never a
    // list index, which holds account_id only after its sort key and so walks the organization.
    expect(plan).toMatch(/Index Scan using (memberships_pkey|memberships_account) on memberships/);
  });

  it('the members list still walks its sort index', async () => {
    const plan = await genericPlan(
      'select account_id from memberships where organization_id = $1 and list_tab = $2 order by name_key, account_id limit 50',
      `${ORG}, 'members'`,
    );
    expect(plan).toContain('memberships_list_name');
  });
});

describe('counters', () => {
  it("the SCIM users total reads the organization's counter rows by key", async () => {
    const plan = await genericPlan(
      'select coalesce(sum(n), 0)::int as total from scim_user_counts where organization_id = $1',
      ORG,
    );
    // By its primary key (an index or bitmap scan): never a walk over every organization's counters.
    expect(plan).toContain('scim_user_counts_pkey');
    expect(plan).not.toContain('Seq Scan');
  });
});

/**
 * PL/pgSQL plans a function's queries in each session on first use and keeps the plans: these
 * run a function in one session while its tables are tiny, grow the tables, and count the rows
 * the next call reads (tableCounts, before and after in one transaction; a reserved session sends
 * its own begin and commit).
 */
describe('PL/pgSQL planned while its tables were small', () => {
  async function rowsReadBy<T>(session: ReservedSql, table: string, call: () => Promise<T>): Promise<[T, number]> {
    await session`begin`;
    const before = await tableCounts(session, table);
    const result = await call();
    const after = await tableCounts(session, table);
    await session`commit`;
    return [result, countsBetween(before, after).rowsRead];
  }

  async function organizationWithMembers(session: ReservedSql, slug: string) {
    const [org] = await session<{ id: string }[]>`
      insert into organizations (slug, name) values (${slug}, ${slug}) returning id`;
    const addMembers = async (emails: string[]) =>
      (
        await session<{ id: string }[]>`
          with a as (insert into accounts (email) select unnest(${emails}::text[]) returning id)
          insert into memberships (organization_id, account_id, status, source)
          select ${org!.id}, id, 'active', 'scim' from a returning account_id as id`
      ).map((row) => row.id);
    return { id: org!.id, addMembers };
  }

  it("the check of a join's members reads each member by key, however large the organization has grown", async () => {
    const session = await db.sql.reserve();
    try {
      const org = await organizationWithMembers(session, 'quiet-plan');
      const [first] = await org.addMembers(['first@quiet-plan.test']);
      const quiet = async () => {
        const [row] = await session<{ quiet: boolean }[]>`
          select orgsync_role_mapping_quiet(${org.id}, ${[first!]}::text[]) as quiet`;
        return row!.quiet;
      };
      for (let i = 0; i < 8; i++) await quiet();
      await org.addMembers(Array.from({ length: 2000 }, (_, i) => `m${i}@quiet-plan.test`));

      const [answer, rows] = await rowsReadBy(session, 'memberships', quiet);
      expect(answer).toBe(true);
      expect(rows).toBeLessThanOrEqual(1);
    } finally {
      session.release();
    }
  });

  it("a group member added counts toward the group's version by reading the group by key, however many groups there are", async () => {
    const session = await db.sql.reserve();
    try {
      const org = await organizationWithMembers(session, 'group-plan');
      const members = await org.addMembers(Array.from({ length: 10 }, (_, i) => `m${i}@group-plan.test`));
      const [group] = await session<{ id: string }[]>`
        insert into groups (organization_id, source, display_name) values (${org.id}, 'scim', 'first') returning id`;
      const add = (accountId: string) => session`
        insert into group_members (organization_id, group_id, account_id) values (${org.id}, ${group!.id}, ${accountId})`;
      for (const member of members.slice(0, 8)) await add(member);
      await session`
        insert into groups (organization_id, source, display_name)
        select ${org.id}, 'scim', 'group ' || i from generate_series(1, 2000) i`;

      const [, rows] = await rowsReadBy(session, 'groups', () => add(members[9]!));
      // The foreign key's check and the version trigger's join: one row each.
      expect(rows).toBeLessThanOrEqual(2);
    } finally {
      session.release();
    }
  });
});
