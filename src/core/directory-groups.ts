import type { Actor } from './actor.ts';
import type { DirectoryQuery } from './directory-users.ts';
import {
  changeGroupMembers,
  createGroup,
  deleteGroup,
  getGroup,
  replaceGroupMembers,
  updateGroup,
  type Group,
} from './groups.ts';
import { inTransaction, type Db, type Sql } from '../storage/database.ts';

/**
 * Directory groups, pushed by the IdP (SCIM Groups): the core's groups with source `scim`. Local and SAML groups are not
 * visible through SCIM. Member changes go through the core, which touches only the named rows.
 */
export interface GroupMember {
  value: string;
  display?: string;
}

/** The core's group functions act only on SCIM groups when given this. */
export const SCIM_GROUPS = { source: 'scim' } as const;

export function findScimGroup(db: Db, organizationId: string, id: string): Promise<Group | null> {
  return getGroup(db, organizationId, id, SCIM_GROUPS);
}

export async function listScimGroups(
  sql: Sql,
  organizationId: string,
  query: DirectoryQuery,
  totalOf: (rows: number) => number | null,
): Promise<{ rows: Group[]; total: number }> {
  const rows = await sql<Group[]>`
    select * from groups g
    where g.organization_id = ${organizationId} and g.source = 'scim' and ${query.where}
    order by ${query.orderBy}
    offset ${query.offset} limit ${query.limit}`;
  const total =
    totalOf(rows.length) ??
    (
      await sql<{ total: number }[]>`
    select count(*)::int as total from groups g
    where g.organization_id = ${organizationId} and g.source = 'scim' and ${query.where}`
    )[0]!.total;
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
    // Member changes leave the group row as it is, so `group` stays current.
    if (input.members?.length) await changeGroupMembers(tx, organizationId, group.id, { add: input.members }, actor);
    return group;
  });
}

/** PUT: the whole group. Members are replaced by difference, so an unchanged member is not rewritten. */
export async function replaceScimGroup(
  sql: Sql,
  organizationId: string,
  id: string,
  input: { displayName: string; externalId: string | null; members: string[] },
  actor: Actor,
): Promise<Group> {
  return inTransaction(sql, async (tx) => {
    const group = await updateGroup(
      tx,
      organizationId,
      id,
      { displayName: input.displayName, externalId: input.externalId },
      actor,
      SCIM_GROUPS,
    );
    await replaceGroupMembers(tx, organizationId, id, input.members, actor, SCIM_GROUPS);
    return group;
  });
}

export async function deleteScimGroup(sql: Sql, organizationId: string, id: string, actor: Actor): Promise<void> {
  await deleteGroup(sql, organizationId, id, actor, SCIM_GROUPS);
}
