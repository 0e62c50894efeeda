import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScimRequest } from '../../src/scim/auth.ts';
import { patchGroup } from '../../src/scim/groups.ts';
import type { Sql } from '../../src/storage/database.ts';
import { oktaUser, scimFixture } from '../support/scim.ts';
import { countsBetween, tableCounts, type TableCounts } from '../support/table-counts.ts';

/**
 * A member change touches only that member's row, whatever the group's size (README, SCIM).
 * Measured without timing: PostgreSQL's per-transaction table statistics
 * (pg_stat_xact_user_tables) count the rows each statement reads from group_members, so a
 * PATCH run inside a test transaction shows exactly what it read.
 */
const LARGE = 3000;

let f: Awaited<ReturnType<typeof scimFixture>>;
let scim: ScimRequest;
let small: string;
let large: string;
let newcomer: string;
/**
 * Users measured joining and leaving one group each, never members before: no dead row versions
 * of theirs nor rows in other groups for an index scan to visit (the planner may find a member's
 * row through the account's index as well as the group's).
 */
let probes: string[];

beforeAll(async () => {
  f = await scimFixture('scale-org');
  const organizationId = f.org.organization.id;
  const [token] = await f.ctx
    .sql`select id from credentials where organization_id = ${organizationId} and kind = 'scim'`;
  scim = {
    app: f.ctx,
    organizationId,
    credentialId: token!.id,
    actor: { type: 'scim_token', id: token!.id, name: 'idp', channel: 'scim' },
  };

  const ids = await Promise.all(
    ['s1', 's2', 'new', 'p1', 'p2', 'p3'].map(
      async (n) => (await f.client.post('/Users', oktaUser(`${n}@scale.test`)).expect(201)).body.id as string,
    ),
  );
  newcomer = ids[2]!;
  probes = ids.slice(3);
  small = (
    await f.client
      .post('/Groups', { displayName: 'Small', members: [{ value: ids[0] }, { value: ids[1] }] })
      .expect(201)
  ).body.id;
  large = (await f.client.post('/Groups', { displayName: 'Large' }).expect(201)).body.id;
  await f.ctx.sql.begin(async (tx) => {
    await tx`
      with people as (
        insert into accounts (email) select 'bulk' || n || '@scale.test' from generate_series(1, ${LARGE}) n returning id
      ), joined as (
        insert into memberships (organization_id, account_id, status, source) select ${organizationId}, id, 'active', 'scim' from people returning account_id
      )
      insert into group_members (organization_id, group_id, account_id) select ${organizationId}, ${large}, account_id from joined`;
  });
  // Statistics that know the large group is large: the planner's worst case for these statements.
  await f.ctx.sql`analyze group_members`;
});
afterAll(async () => f.ctx.database.close());

const memberCount = async (groupId: string) =>
  Number((await f.ctx.sql`select count(*)::int as n from group_members where group_id = ${groupId}`)[0]!.n);

/** What one PATCH did to group_members, from the statistics of the transaction it ran in. */
async function patchReads(groupId: string, operations: unknown[]): Promise<TableCounts> {
  return f.ctx.sql.begin(async (tx) => {
    const before = await tableCounts(tx, 'group_members');
    await patchGroup({ ...scim, app: { ...f.ctx, sql: tx as unknown as Sql } }, groupId, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: operations,
    });
    return countsBetween(before, await tableCounts(tx, 'group_members'));
  });
}

describe('member changes of a large group', () => {
  it('answer 204 with no members in the body', async () => {
    const added = await f.client
      .patch(`/Groups/${large}`, [{ op: 'add', path: 'members', value: [{ value: newcomer }] }])
      .expect(204);
    expect(added.text).toBe('');
    expect(await memberCount(large)).toBe(LARGE + 1);
    const removed = await f.client
      .patch(`/Groups/${large}`, [{ op: 'remove', path: `members[value eq "${newcomer}"]` }])
      .expect(204);
    expect(removed.text).toBe('');
    expect(await memberCount(large)).toBe(LARGE);
  });

  it('read and write only the member changed: the same rows for a group of 2 and of 3000', async () => {
    const add = (value: string) => [{ op: 'add', path: 'members', value: [{ value }] }];
    const remove = (value: string) => [{ op: 'remove', path: `members[value eq "${value}"]` }];
    const [p1, p2, p3] = probes as [string, string, string];

    const addSmall = await patchReads(small, add(p1));
    const addLarge = await patchReads(large, add(p2));
    expect(addSmall).toEqual({ seqScans: 0, rowsRead: 0, inserted: 1, deleted: 0 });
    expect(addLarge).toEqual(addSmall);

    const removeSmall = await patchReads(small, remove(p1));
    const removeLarge = await patchReads(large, remove(p2));
    // The one row deleted is the one row read.
    expect(removeSmall).toEqual({ seqScans: 0, rowsRead: 1, inserted: 0, deleted: 1 });
    expect(removeLarge).toEqual(removeSmall);

    // By a value array, and a PATCH doing both.
    expect(await patchReads(large, add(p3))).toEqual(addLarge);
    expect(await patchReads(large, [{ op: 'remove', path: 'members', value: [{ value: p3 }] }])).toEqual(removeLarge);
    expect(await patchReads(large, [...add(newcomer), ...remove(p1)])).toEqual({
      seqScans: 0,
      rowsRead: 0,
      inserted: 1,
      deleted: 0,
    });
    expect(await memberCount(large)).toBe(LARGE + 1);
    expect(await memberCount(small)).toBe(2);
  });
});
