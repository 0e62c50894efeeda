import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

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

describe('role mapping', () => {
  it("the check of a join's members reads each member by key, however large the organization has grown since the session planned it", async () => {
    const session = await db.sql.reserve();
    try {
      const [org] = await session<{ id: string }[]>`
        insert into organizations (slug, name) values ('quiet-plan', 'Quiet plan') returning id`;
      const addMembers = (emails: string[]) => session<{ id: string }[]>`
        with a as (insert into accounts (email) select unnest(${emails}::text[]) returning id)
        insert into memberships (organization_id, account_id, status, source)
        select ${org!.id}, id, 'active', 'scim' from a returning account_id as id`;
      const [first] = await addMembers(['first@quiet-plan.test']);
      const quiet = () =>
        session<{ quiet: boolean }[]>`select orgsync_role_mapping_quiet(${org!.id}, ${[first!.id]}::text[]) as quiet`;
      // PL/pgSQL plans the function's queries now, while the table is tiny, and keeps the plans.
      for (let i = 0; i < 8; i++) await quiet();
      await addMembers(Array.from({ length: 2000 }, (_, i) => `m${i}@quiet-plan.test`));

      // The session's count of rows read, before and after (kept until the session reports it,
      // so read in one transaction: a reserved session sends its own begin and commit).
      const rowsRead = () => session<{ rows: number }[]>`
        select (coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0))::int as rows
        from pg_stat_xact_user_tables where relname = 'memberships'`;
      await session`begin`;
      const [before] = await rowsRead();
      const [answer] = await quiet();
      const [after] = await rowsRead();
      await session`commit`;
      expect(answer!.quiet).toBe(true);
      expect(after!.rows - before!.rows).toBeLessThanOrEqual(1);
    } finally {
      session.release();
    }
  });
});
