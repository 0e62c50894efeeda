import type { Actor } from './actor.ts';
import type { DirectoryQuery } from './directory-users.ts';
import {
  changeGroupMembers,
  changeVersionedGroupMembers,
  claimGroupVersion,
  createGroup,
  deleteGroup,
  groupVersion,
  replaceGroupMembers,
  updateGroup,
  type Group,
} from './groups.ts';
import { isUuid } from './ids.ts';
import { inTransaction, type Db, type Fragment, type Sql } from '../storage/database.ts';

/**
 * Directory groups, pushed by the IdP (SCIM Groups): the core's groups with source `scim`. Local and SAML groups are not
 * visible through SCIM. Member changes go through the core, which touches only the named rows.
 *
 * A directory group's `version` is its SCIM version (groupVersion: its own changes and its
 * member changes). Writes take `ifMatch`, the versions an If-Match header names (undefined: no
 * condition); a group at none of them is refused with precondition_failed and nothing changes.
 */
export interface GroupMember {
  value: string;
  display?: string;
}

/** The core's group functions act only on SCIM groups when given this. */
export const SCIM_GROUPS = { source: 'scim' } as const;

/** A group row aliased `g`, with its SCIM version as `version`. */
function scimGroupColumns(db: Db): Fragment {
  return db`g.organization_id, g.id, g.source, g.display_name, g.external_id, g.created_at, g.updated_at,
    ${groupVersion(db)}::float8 as version`;
}

export async function findScimGroup(db: Db, organizationId: string, id: string): Promise<Group | null> {
  if (!isUuid(id)) return null;
  const [group] = await db<Group[]>`
    select ${scimGroupColumns(db)} from groups g
    where g.organization_id = ${organizationId} and g.id = ${id} and g.source = 'scim'`;
  return group ?? null;
}

export async function listScimGroups(
  sql: Sql,
  organizationId: string,
  query: DirectoryQuery,
  totalOf: (rows: number) => number | null,
): Promise<{ rows: Group[]; total: number }> {
  const matching = sql`
    groups g where g.organization_id = ${organizationId} and g.source = 'scim' and ${query.where ?? sql`true`}`;
  const rows = await sql<Group[]>`
    select ${scimGroupColumns(sql)} from ${matching}
    order by ${query.orderBy}
    offset ${query.offset} limit ${query.limit}`;
  const total =
    totalOf(rows.length) ?? (await sql<{ total: number }[]>`select count(*)::int as total from ${matching}`)[0]!.total;
  return { rows, total };
}

/** Members of the given groups, each with the userName as its display. */
export async function membersOf(
  db: Db,
  organizationId: string,
  groupIds: string[],
): Promise<Map<string, GroupMember[]>> {
  const members = new Map<string, GroupMember[]>(groupIds.map((id) => [id, []]));
  if (groupIds.length === 0) return members;
  const rows = await db<{ groupId: string; accountId: string; userName: string | null }[]>`
    select gm.group_id, gm.account_id, u.user_name
    from group_members gm
    left join scim_users u on u.organization_id = gm.organization_id and u.account_id = gm.account_id
    where gm.organization_id = ${organizationId} and gm.group_id = any(${groupIds}::uuid[])
    order by gm.group_id, gm.account_id`;
  for (const row of rows) {
    members
      .get(row.groupId)!
      .push(row.userName ? { value: row.accountId, display: row.userName } : { value: row.accountId });
  }
  return members;
}

export async function createScimGroup(
  sql: Sql,
  organizationId: string,
  input: { displayName: string; externalId: string | null; members?: string[] },
  actor: Actor,
): Promise<Group> {
  return inTransaction(sql, async (tx) => {
    const group = await createGroup(
      tx,
      { organizationId, source: 'scim', displayName: input.displayName, externalId: input.externalId },
      actor,
    );
    if (!input.members?.length) return group;
    await changeGroupMembers(tx, organizationId, group.id, { add: input.members }, actor);
    return currentScimGroup(tx, organizationId, group.id);
  });
}

/** PUT: the whole group. Members are replaced by difference, so an unchanged member is not rewritten. */
export async function replaceScimGroup(
  sql: Sql,
  organizationId: string,
  id: string,
  input: { displayName: string; externalId: string | null; members: string[] },
  actor: Actor,
  ifMatch?: readonly number[],
): Promise<Group> {
  return inTransaction(sql, async (tx) => {
    if (ifMatch) await claimScimGroupVersion(tx, organizationId, id, ifMatch);
    await updateGroup(
      tx,
      organizationId,
      id,
      { displayName: input.displayName, externalId: input.externalId },
      actor,
      SCIM_GROUPS,
    );
    await replaceGroupMembers(tx, organizationId, id, input.members, actor, SCIM_GROUPS);
    return currentScimGroup(tx, organizationId, id);
  });
}

/**
 * PATCH adding and removing members only (the IdPs' commonest group PATCH): one statement when
 * it can be. Answers the group's version after it (undefined when the group is gone already).
 */
export async function changeScimGroupMembers(
  sql: Sql,
  organizationId: string,
  id: string,
  change: { add: string[]; remove: string[] },
  actor: Actor,
  ifMatch?: readonly number[],
): Promise<number | undefined> {
  const done = await changeVersionedGroupMembers(sql, organizationId, id, change, actor, {
    only: SCIM_GROUPS,
    ifMatch,
  });
  return done.version ?? (await findScimGroup(sql, organizationId, id))?.version;
}

/** The If-Match check of a write made of several steps, first in its transaction (see claimGroupVersion). */
export async function claimScimGroupVersion(
  tx: Db,
  organizationId: string,
  id: string,
  ifMatch: readonly number[],
): Promise<void> {
  await claimGroupVersion(tx, organizationId, id, ifMatch, SCIM_GROUPS);
}

/** The group as it is now, in the caller's transaction (after its writes). */
export async function currentScimGroup(db: Db, organizationId: string, id: string): Promise<Group> {
  const group = await findScimGroup(db, organizationId, id);
  if (!group) throw new Error(`SCIM group ${id} vanished inside its own transaction`);
  return group;
}

export async function deleteScimGroup(
  sql: Sql,
  organizationId: string,
  id: string,
  actor: Actor,
  ifMatch?: readonly number[],
): Promise<void> {
  if (!ifMatch) return deleteGroup(sql, organizationId, id, actor, SCIM_GROUPS);
  await inTransaction(sql, async (tx) => {
    await claimScimGroupVersion(tx, organizationId, id, ifMatch);
    await deleteGroup(tx, organizationId, id, actor, SCIM_GROUPS);
  });
}
