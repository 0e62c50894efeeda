import { afterEach, describe, expect, it } from 'vitest';
import { loadMigrations, migrate } from '../src/storage/migrate.ts';
import { connect } from '../src/storage/database.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

describe('migrations', () => {
  let db: TestDatabase;
  afterEach(async () => db?.close());

  it('apply once; a second run applies nothing', async () => {
    db = await createTestDatabase({ migrate: false });
    const all = loadMigrations().map((m) => m.version);
    expect(await migrate(db.sql)).toEqual(all);
    expect(await migrate(db.sql)).toEqual([]);
    const rows = await db.sql`select version from schema_migrations order by version`;
    expect(rows.map((r) => r.version)).toEqual(all);
  });

  it('are safe when several instances start at once', async () => {
    db = await createTestDatabase({ migrate: false });
    // Separate pools, as separate processes would have.
    const pools = [0, 1, 2, 3].map(() => connect(db.url, 1));
    try {
      const results = await Promise.all(pools.map((sql) => migrate(sql)));
      const applied = results.flat();
      expect(applied).toEqual(loadMigrations().map((m) => m.version));
      expect(results.filter((r) => r.length > 0)).toHaveLength(1);
    } finally {
      await Promise.all(pools.map((sql) => sql.end()));
    }
  });

  it('refuse to run when an applied migration was edited', async () => {
    db = await createTestDatabase();
    const edited = loadMigrations().map((m, i) => (i === 0 ? { ...m, checksum: 'different' } : m));
    await expect(migrate(db.sql, edited)).rejects.toThrow(/was changed after it was applied/);
  });

  it('roll back entirely when one fails', async () => {
    db = await createTestDatabase({ migrate: false });
    const broken = [...loadMigrations(), { version: '999_broken', sql: 'create table x (; ', checksum: 'x' }];
    await expect(migrate(db.sql, broken)).rejects.toThrow();
    const [row] = await db.sql`select to_regclass('organizations') as t, to_regclass('schema_migrations') as m`;
    expect(row).toEqual({ t: null, m: null });
  });
});

describe('migration 111 (SCIM user counters)', () => {
  let db: TestDatabase;
  afterEach(async () => db?.close());

  it('counts the users that exist before it, then follows inserts, deletes and key changes', async () => {
    db = await createTestDatabase({ migrate: false });
    const all = loadMigrations();
    await migrate(
      db.sql,
      all.filter((m) => m.version < '111_scim_user_counts'),
    );
    const [a, b] = (
      await db.sql<{ id: string }[]>`
      insert into organizations (slug, name) values ('a', 'A'), ('b', 'B') returning id`
    ).map((o) => o.id) as [string, string];
    const people = (
      await db.sql<{ id: string }[]>`
      insert into accounts (email) select 'p' || n || '@counts.test' from generate_series(1, 50) n returning id`
    ).map((p) => p.id);
    const provision = (organizationId: string, accountIds: string[]) => db.sql`
      insert into scim_users (organization_id, account_id, user_name, resource)
      select ${organizationId}, id, id::text, '{}' from unnest(${accountIds}::uuid[]) id`;
    await provision(a, people.slice(0, 30));
    await provision(b, people.slice(30, 40));

    const byOrganization = (rows: { organizationId: string; n: number }[]) =>
      Object.fromEntries(rows.map((r) => [r.organizationId, r.n]));
    const counted = async () =>
      byOrganization(await db.sql`select organization_id, sum(n)::int as n from scim_user_counts group by 1`);
    const actual = async () =>
      byOrganization(await db.sql`select organization_id, count(*)::int as n from scim_users group by 1`);

    await migrate(db.sql);
    expect(await counted()).toEqual(await actual());
    expect(await counted()).toEqual({ [a]: 30, [b]: 10 });
    // Spread over shards, so concurrent creates in one organization rarely meet on one row.
    const [spread] = await db.sql`select count(*)::int as shards from scim_user_counts where organization_id = ${a}`;
    expect(spread!.shards).toBeGreaterThan(1);

    await db.sql`delete from scim_users where organization_id = ${a} and account_id = any(${people.slice(0, 5)}::uuid[])`;
    await provision(b, people.slice(40, 43));
    // Keys orgsync never changes, changed anyway: the count follows the row.
    await db.sql`update scim_users set organization_id = ${b} where organization_id = ${a} and account_id = any(${people.slice(5, 7)}::uuid[])`;
    await db.sql`update scim_users set account_id = ${people[49]!} where organization_id = ${a} and account_id = ${people[7]!}`;
    expect(await counted()).toEqual(await actual());
    expect(await counted()).toEqual({ [a]: 23, [b]: 15 });

    // An organization deleted takes its users and its counters.
    await db.sql`delete from organizations where id = ${b}`;
    expect(await counted()).toEqual({ [a]: 23 });
    expect(await actual()).toEqual({ [a]: 23 });
  });
});

describe('migration 112 (member counter shards over bigint)', () => {
  let db: TestDatabase;
  afterEach(async () => db?.close());

  it('keeps every member in the shard migration 094 gave it, so existing counters stay right', async () => {
    db = await createTestDatabase({ migrate: false });
    await migrate(
      db.sql,
      loadMigrations().filter((m) => m.version < '112_member_counts_shard'),
    );
    const [org] = await db.sql<{ id: string }[]>`insert into organizations (slug, name) values ('m', 'M') returning id`;
    const people = (
      await db.sql<{ id: string }[]>`
      insert into accounts (email) select 'm' || n || '@shards.test' from generate_series(1, 60) n returning id`
    ).map((p) => p.id);
    const join = (accountIds: string[]) => db.sql`
      insert into memberships (organization_id, account_id, status, source)
      select ${org!.id}, id, 'active', 'scim' from unnest(${accountIds}::uuid[]) id`;
    await join(people.slice(0, 40));

    // Up to 112 only: from 118 on, a transaction counts in a shard of its own, not its accounts'.
    await migrate(
      db.sql,
      loadMigrations().filter((m) => m.version < '113_member_counts_lock_order'),
    );
    // Counted before the migration, changed after it: every shard still equals its members, which
    // it would not if a member's shard had moved (one shard would go negative, another stay high).
    await db.sql`delete from memberships where account_id = any(${people.slice(0, 15)}::uuid[])`;
    await join(people.slice(40, 60));
    const shards = await db.sql<{ shard: number; counted: number; actual: number }[]>`
      select c.shard, c.n::int as counted, count(m.account_id)::int as actual
      from member_counts c
      left join memberships m on m.organization_id = c.organization_id and m.list_tab = c.list_tab
        and m.status = c.status and abs(hashtext(m.account_id::text)::bigint) % 16 = c.shard
      where c.organization_id = ${org!.id}
      group by c.shard, c.n`;
    expect(shards.length).toBeGreaterThan(1);
    for (const { counted, actual } of shards) expect(counted).toBe(actual);
    expect(shards.reduce((sum, s) => sum + s.counted, 0)).toBe(45);
  });
});

describe('migration 113 (member counter rows locked in one order)', () => {
  let db: TestDatabase;
  afterEach(async () => db?.close());

  it('keeps every shard exact through moves either way between statuses and tabs', async () => {
    db = await createTestDatabase();
    const [org] = await db.sql<{ id: string }[]>`insert into organizations (slug, name) values ('o', 'O') returning id`;
    const people = (
      await db.sql<{ id: string }[]>`
      insert into accounts (email) select 'o' || n || '@order.test' from generate_series(1, 40) n returning id`
    ).map((p) => p.id);
    await db.sql`
      insert into memberships (organization_id, account_id, status, source)
      select ${org!.id}, id, case when n <= 20 then 'active' else 'invited' end, 'scim'
      from unnest(${people}::uuid[]) with ordinality as p(id, n)`;
    const move = (from: string, to: string, limit: number) => db.sql`
      update memberships set status = ${to}
      where account_id in (select account_id from memberships where status = ${from} order by account_id limit ${limit})`;
    await move('active', 'suspended', 12); // the row left sorts first
    await move('suspended', 'active', 5); // the row joined sorts first
    await move('invited', 'active', 8); // to the other tab
    await move('active', 'removed', 4); // out of the list
    await move('removed', 'invited', 2); // back into it
    await db.sql`delete from memberships where account_id = any(${people.slice(35)}::uuid[])`;

    // Each statement counted in a shard of its own (migration 118): the sums over shards are the counts.
    const [wrong] = await db.sql`
      select count(*)::int as n from (
        select list_tab, status, count(*) as n from memberships where list_tab is not null group by 1, 2
      ) actual
      full join (
        select list_tab, status, sum(n) as n from member_counts group by 1, 2 having sum(n) <> 0
      ) c using (list_tab, status)
      where actual.n is distinct from c.n`;
    expect(wrong!.n).toBe(0);
    const [total] = await db.sql`
      select (select sum(n)::int from member_counts) as counted,
             (select count(*)::int from memberships where list_tab is not null) as listed`;
    expect(total!.counted).toBe(total!.listed);
    expect(total!.listed).toBeGreaterThan(30);
  });
});
