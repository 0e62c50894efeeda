import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemActor } from '../../src/core/actor.ts';
import { changeScimGroupMembers, createScimGroup, findScimGroup } from '../../src/core/directory-groups.ts';
import {
  deprovisionUser,
  provisionUser,
  setDirectoryUserActive,
  type DirectoryUser,
} from '../../src/core/directory-users.ts';
import { DomainError } from '../../src/core/errors.ts';
import { inviteMembers } from '../../src/core/invitations.ts';
import { createOrganization } from '../../src/core/organizations.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { started } from '../support/lock-waits.ts';
import { countersAndRows } from '../support/table-counts.ts';

/**
 * SCIM writes of one organization's users, and of one group's members, that arrive while two are
 * being written share the next transaction (group commit). Which transaction wrote an audit entry
 * or row is read from its xmin. Each write must answer, audit and announce as it would alone; a
 * refusal stays its own; a write that needs the longer path sends its batch's writes each on its
 * own.
 */
describe('SCIM writes sent together', () => {
  let db: TestDatabase;
  let organizationId: string;
  const scim = { type: 'scim_token', id: undefined, name: 'okta', channel: 'scim' } as const;

  beforeAll(async () => {
    db = await createTestDatabase();
    const { organization } = await createOrganization(
      db.sql,
      { name: 'Together', ownerEmail: 'owner@together.test' },
      systemActor('cli'),
    );
    organizationId = organization.id;
  });
  afterAll(() => db.close());

  const user = (name: string) => ({
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName: `${name}@together.test`,
    emails: [{ value: `${name}@together.test`, primary: true }],
    active: true,
  });
  /** All provisioned in one turn of the event loop, as a burst of requests would be. */
  const provisionAll = (names: string[]) =>
    Promise.allSettled(names.map((name) => provisionUser(db.sql, organizationId, user(name), scim)));
  /** How many transactions wrote the audit entries of `action` about these targets. */
  const transactionsOf = async (action: string, targets: string[]) =>
    (
      await db.sql<{ n: number }[]>`
        select count(distinct xmin::text)::int as n from audit_log
        where organization_id = ${organizationId} and action = ${action} and target_id = any(${targets})`
    )[0]!.n;
  const created = (rows: DirectoryUser[]) =>
    transactionsOf(
      'scim.user_created',
      rows.map((r) => r.accountId),
    );
  const fulfilled = (settled: PromiseSettledResult<DirectoryUser>[]) =>
    settled.map((s) => {
      if (s.status === 'rejected') throw s.reason;
      return s.value;
    });

  /** The organization's SCIM user counter, shard by shard. */
  const userCounterShards = async () =>
    new Map(
      (
        await db.sql<{ shard: number; n: number }[]>`
          select shard, n::int from scim_user_counts where organization_id = ${organizationId}`
      ).map((r) => [r.shard, r.n]),
    );

  it('the first two go at once, the ten that wait share one transaction, and each is audited and announced', async () => {
    const before = await userCounterShards();
    const names = Array.from({ length: 12 }, (_, i) => `burst${i}`);
    const rows = fulfilled(await provisionAll(names));
    expect(rows.map((r) => r.userName)).toEqual(names.map((n) => `${n}@together.test`));
    expect(await created(rows)).toBe(3);
    // The shared transaction counted its ten in one shard (migration 117), not in each account's.
    const after = await userCounterShards();
    const added = [...after].map(([shard, n]) => n - (before.get(shard) ?? 0));
    expect(added.reduce((sum, n) => sum + n, 0)).toBe(12);
    expect(Math.max(...added)).toBeGreaterThanOrEqual(10);
    const ids = rows.map((r) => r.accountId);
    const audit = await db.sql<{ action: string; n: number }[]>`
      select action, count(*)::int as n from audit_log where target_id = any(${ids}) group by action order by action`;
    expect(audit).toEqual([
      { action: 'member.joined', n: 12 },
      { action: 'scim.user_created', n: 12 },
    ]);
    const events = await db.sql<{ type: string; n: number }[]>`
      select type, count(*)::int as n from outbox where payload->>'accountId' = any(${ids}) group by type order by type`;
    expect(events).toEqual([
      { type: 'member.joined', n: 12 },
      { type: 'user.provisioned', n: 12 },
    ]);
    const members = await db.sql`
      select 1 from memberships where organization_id = ${organizationId} and account_id = any(${ids}::uuid[])
        and status = 'active' and source = 'scim'`;
    expect(members).toHaveLength(12);
  });

  it('a create refused in a shared transaction is refused alone; the others commit together', async () => {
    const settled = await provisionAll(['dup0', 'dup1', 'dup2', 'dup3', 'dup2', 'dup4']);
    const refused = settled[4]!;
    expect(refused.status).toBe('rejected');
    expect((refused as PromiseRejectedResult).reason).toBeInstanceOf(DomainError);
    expect(((refused as PromiseRejectedResult).reason as DomainError).code).toBe('conflict');
    const rows = fulfilled(settled.filter((_, i) => i !== 4));
    // dup0 and dup1 alone; dup2, dup3 and dup4 in the transaction the refused one ran in.
    expect(await created(rows)).toBe(3);
  });

  it('a create that needs the longer path sends each create of its batch on its own, and all are made', async () => {
    const [invited] = await inviteMembers(
      db.sql,
      'test-secret-0123456789abcdef0123456789abcdef',
      organizationId,
      [{ email: 'longer2@together.test' }],
      systemActor('cli'),
    );
    expect(invited!.invited).toBe(true);
    const names = ['longer0', 'longer1', 'longer2', 'longer3', 'longer4'];
    const rows = fulfilled(await provisionAll(names));
    expect(await created(rows)).toBe(5);
    const [invitation] = await db.sql<{ status: string }[]>`
      select status from invitations where organization_id = ${organizationId} and email = 'longer2@together.test'`;
    expect(invitation!.status).toBe('accepted');
    const joined = await db.sql`
      select 1 from memberships where organization_id = ${organizationId} and status = 'active'
        and account_id = any(${rows.map((r) => r.accountId)}::uuid[])`;
    expect(joined).toHaveLength(5);
  });

  it('deactivations and deletes sent together share transactions, each audited as alone', async () => {
    const rows = [];
    for (let i = 0; i < 6; i++) rows.push(await provisionUser(db.sql, organizationId, user(`leaver${i}`), scim));
    const ids = rows.map((r) => r.accountId);
    const deactivated = await Promise.all(
      ids.map((id) => setDirectoryUserActive(db.sql, organizationId, id, false, scim)),
    );
    expect(deactivated.map((r) => r.active)).toEqual(ids.map(() => false));
    expect(await transactionsOf('member.suspended', ids)).toBe(3);
    expect(await transactionsOf('scim.user_updated', ids)).toBe(3);
    const suspended = await db.sql`
      select 1 from memberships where organization_id = ${organizationId} and account_id = any(${ids}::uuid[])
        and status = 'suspended'`;
    expect(suspended).toHaveLength(6);

    const unknown = '00000000-0000-4000-8000-000000000000';
    const deleted = await Promise.allSettled(
      [...ids, unknown].map((id) => deprovisionUser(db.sql, organizationId, id, scim)),
    );
    expect(deleted.slice(0, 6).every((d) => d.status === 'fulfilled')).toBe(true);
    expect(((deleted[6] as PromiseRejectedResult).reason as DomainError).code).toBe('not_found');
    expect(await transactionsOf('scim.user_deleted', ids)).toBe(3);
    expect(await transactionsOf('member.removed', ids)).toBe(3);
    const left =
      await db.sql`select 1 from scim_users where organization_id = ${organizationId} and account_id = any(${ids}::uuid[])`;
    expect(left).toHaveLength(0);
  });

  it('member adds to one group sent together share transactions; the group counts every one', async () => {
    const people = [];
    for (let i = 0; i < 8; i++) people.push(await provisionUser(db.sql, organizationId, user(`grouped${i}`), scim));
    const group = await createScimGroup(db.sql, organizationId, { displayName: 'Engineering', externalId: null }, scim);
    const ids = people.map((p) => p.accountId);
    const versions = await Promise.all(
      ids.map((id) => changeScimGroupMembers(db.sql, organizationId, group.id, { add: [id], remove: [] }, scim)),
    );
    expect(versions.every((v) => typeof v === 'number' && v > group.version)).toBe(true);
    const entries = await db.sql<{ xmin: string; added: string[] }[]>`
      select xmin::text, array(select jsonb_array_elements_text(details->'added')) as added from audit_log
      where organization_id = ${organizationId} and action = 'group.members_changed' and target_id = ${group.id}`;
    expect(entries.flatMap((e) => e.added).sort()).toEqual([...ids].sort());
    expect(new Set(entries.map((e) => e.xmin)).size).toBe(3);
    expect((await findScimGroup(db.sql, organizationId, group.id))!.version).toBe(group.version + 8);
    const members = await db.sql`select 1 from group_members where group_id = ${group.id}`;
    expect(members).toHaveLength(8);
  });

  it('the counters, summed over their shards, still count every user and member', async () => {
    const counts = await countersAndRows(db.sql, organizationId);
    expect(counts.counted).toBe(counts.users);
    expect(counts.members).toBe(counts.listed);
    expect(counts.users).toBeGreaterThan(20);
  });

  // A second session holds a row a write waits on: a real PostgreSQL only (the embedded one has one session).
  it.skipIf(!process.env.DATABASE_URL)(
    'two shared transactions of one organization run side by side, not one after the other',
    async () => {
      // Another session inserts the account of held@ and does not commit: the create of held@
      // waits on it, inside its own transaction, while the creates behind it go on.
      const holder = await db.sql.reserve();
      try {
        await holder`begin`;
        await holder`insert into accounts (email) values ('held@together.test')`;
        const held = started(provisionUser(db.sql, organizationId, user('held'), scim));
        const names = ['side0', 'side1', 'side2', 'side3', 'side4', 'side5'];
        const others = fulfilled(await provisionAll(names));
        // side0 alone; the five behind it together, while held@ still waits.
        expect(await created(others)).toBe(2);
        expect(held.settled).toBe(false);
        await holder`rollback`;
        expect((await held.result).userName).toBe('held@together.test');
      } finally {
        holder.release();
      }
    },
  );
});
