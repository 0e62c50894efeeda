import type { Actor } from '../core/actor.ts';
import { notFound } from '../core/errors.ts';
import { isUuid } from '../core/ids.ts';
import {
  changeGroupMembers,
  createGroup,
  deleteGroup,
  getGroup,
  replaceGroupMembers,
  updateGroup,
  type Group,
} from '../core/groups.ts';
import { inTransaction, type Db, type Sql, type Tx } from '../storage/database.ts';
import type { ListQuery } from './user-store.ts';

/**
 * Groups pushed by the IdP: the core's groups with source `scim`. Local and SAML groups are not
 * visible through SCIM. Member changes go through the core, which touches only the named rows.
 */
export interface GroupMember {
  value: string;
  display?: string;
}

export async function findScimGroup(db: Db, organizationId: string, id: string): Promise<Group | null> {
  const group = await getGroup(db, organizationId, id);
  return group?.source === 'scim' ? group : null;
}

/** Locks the group row (so concurrent changes to one group serialise) and checks it is a SCIM group. */
export async function lockScimGroup(tx: Tx, organizationId: string, id: string): Promise<Group> {
  const [group] = isUuid(id)
    ? await tx<Group[]>`select * from groups where organization_id = ${organizationId} and id = ${id} and source = 'scim' for update`
    : [];
  if (!group) throw notFound('group', { id });
  return group;
}

export async function listScimGroups(sql: Sql, organizationId: string, query: ListQuery): Promise<{ rows: Group[]; total: number }> {
  const rows = await sql<Group[]>`
    select * from groups g
    where g.organization_id = ${organizationId} and g.source = 'scim' and ${query.where}
    order by ${query.orderBy}
    offset ${query.offset} limit ${query.limit}`;
  if (query.limit > 0 && rows.length < query.limit && (rows.length > 0 || query.offset === 0)) {
    return { rows, total: query.offset + rows.length };
  }
  const [count] = await sql<{ total: number }[]>`
    select count(*)::int as total from groups g
    where g.organization_id = ${organizationId} and g.source = 'scim' and ${query.where}`;
  return { rows, total: count!.total };
}

/** Members of the given groups, each with the userName as its display. */
export async function membersOf(db: Db, organizationId: string, groupIds: string[]): Promise<Map<string, GroupMember[]>> {
  const members = new Map<string, GroupMember[]>(groupIds.map((id) => [id, []]));
  if (groupIds.length === 0) return members;
  const rows = await db<{ groupId: string; accountId: string; userName: string | null }[]>`
    select gm.group_id, gm.account_id, u.user_name
    from group_members gm
    left join scim_users u on u.organization_id = gm.organization_id and u.account_id = gm.account_id
    where gm.organization_id = ${organizationId} and gm.group_id = any(${groupIds}::uuid[])
    order by gm.group_id, gm.account_id`;
  for (const row of rows) {
    members.get(row.groupId)!.push(row.userName ? { value: row.accountId, display: row.userName } : { value: row.accountId });
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
    const group = await createGroup(tx, { organizationId, source: 'scim', displayName: input.displayName, externalId: input.externalId }, actor);
    if (input.members?.length) await changeGroupMembers(tx, organizationId, group.id, { add: input.members }, actor);
    return (await getGroup(tx, organizationId, group.id))!;
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
    await lockScimGroup(tx, organizationId, id);
    await updateGroup(tx, organizationId, id, { displayName: input.displayName, externalId: input.externalId }, actor);
    await replaceGroupMembers(tx, organizationId, id, input.members, actor);
    return (await getGroup(tx, organizationId, id))!;
  });
}

export async function deleteScimGroup(sql: Sql, organizationId: string, id: string, actor: Actor): Promise<void> {
  await inTransaction(sql, async (tx) => {
    await lockScimGroup(tx, organizationId, id);
    await deleteGroup(tx, organizationId, id, actor);
  });
}
