import type { Db, Tx } from '../storage/database.ts';
import { inTransaction } from '../storage/database.ts';
import type { Actor } from './actor.ts';
import { DomainError, invalid, notFound } from './errors.ts';
import { emitEvent } from './events.ts';
import { recordAudit } from './audit.ts';
import { isUuid } from './ids.ts';
import { assertAnotherOwnerRemains, recordRoleChange, type Membership } from './memberships.ts';
import { OWNER_ROLE, assertRolesExist } from './roles.ts';

export interface GroupRoleMapping {
  organizationId: string;
  id: string;
  groupId: string | null;
  groupName: string | null;
  roles: string[];
}

/** Maps a group (by id) or every group with a name to roles; members' roles follow via the reconciler. */
export async function createGroupRoleMapping(
  db: Db,
  input: { organizationId: string; groupId?: string; groupName?: string; roles: string[] },
  actor: Actor,
): Promise<GroupRoleMapping> {
  const byId = input.groupId !== undefined;
  if (byId === (input.groupName !== undefined)) throw invalid('a mapping names either groupId or groupName');
  if (byId && !isUuid(input.groupId!)) throw notFound('group', { id: input.groupId });
  const groupName = input.groupName?.trim();
  if (groupName !== undefined && (groupName.length < 1 || groupName.length > 256)) throw invalid('groupName must be 1 to 256 characters');
  const roles = [...new Set(input.roles)];
  if (roles.length === 0) throw invalid('a mapping needs at least one role');
  return inTransaction(db, async (tx) => {
    await assertRolesExist(tx, input.organizationId, roles);
    if (byId) {
      const [group] = await tx`select 1 from groups where organization_id = ${input.organizationId} and id = ${input.groupId!}`;
      if (!group) throw notFound('group', { id: input.groupId });
    }
    const [mapping] = await tx<GroupRoleMapping[]>`
      insert into group_role_mappings (organization_id, group_id, group_name, roles)
      values (${input.organizationId}, ${input.groupId ?? null}, ${groupName ?? null}, ${roles}::text[])
      returning organization_id, id, group_id, group_name, roles`;
    await announce(tx, mapping!, 'mapping.created', actor);
    return mapping!;
  });
}

/** Changes the roles a mapping grants; members follow when the reconciler handles the event. */
export async function updateGroupRoleMapping(db: Db, organizationId: string, id: string, roles: string[], actor: Actor): Promise<GroupRoleMapping> {
  if (!isUuid(id)) throw notFound('mapping', { id });
  const wanted = [...new Set(roles)];
  if (wanted.length === 0) throw invalid('a mapping needs at least one role');
  return inTransaction(db, async (tx) => {
    await assertRolesExist(tx, organizationId, wanted);
    const [mapping] = await tx<GroupRoleMapping[]>`
      update group_role_mappings set roles = ${wanted}::text[], updated_at = now()
      where organization_id = ${organizationId} and id = ${id}
      returning organization_id, id, group_id, group_name, roles`;
    if (!mapping) throw notFound('mapping', { id });
    await announce(tx, mapping, 'mapping.updated', actor);
    return mapping;
  });
}

export async function deleteGroupRoleMapping(db: Db, organizationId: string, id: string, actor: Actor): Promise<void> {
  if (!isUuid(id)) throw notFound('mapping', { id });
  await inTransaction(db, async (tx) => {
    const [mapping] = await tx<GroupRoleMapping[]>`
      delete from group_role_mappings where organization_id = ${organizationId} and id = ${id}
      returning organization_id, id, group_id, group_name, roles`;
    if (!mapping) throw notFound('mapping', { id });
    await announce(tx, mapping, 'mapping.deleted', actor);
  });
}

async function announce(tx: Tx, m: GroupRoleMapping, type: string, actor: Actor): Promise<void> {
  const details = { mappingId: m.id, groupId: m.groupId, groupName: m.groupName, roles: m.roles };
  await recordAudit(tx, m.organizationId, actor, type, { type: 'mapping', id: m.id }, details);
  await emitEvent(tx, m.organizationId, type, details, actor);
}

/** Members of the groups a mapping names (what a change of that mapping affects). */
export async function membersOfMappedGroups(db: Db, organizationId: string, groupId: string | null, groupName: string | null): Promise<string[]> {
  const rows = await db<{ accountId: string }[]>`
    select distinct gm.account_id from group_members gm
    join groups g on g.organization_id = gm.organization_id and g.id = gm.group_id
    where gm.organization_id = ${organizationId}
      and (g.id = ${groupId} or lower(g.display_name) = lower(${groupName}))`;
  return rows.map((r) => r.accountId);
}

/**
 * Recomputes `mapped_roles` of the given members from their groups and the organization's
 * mappings, and writes only those that changed (audited with the mappings that grant the roles).
 * The last owner keeps a mapped owner role even when its mapping goes away.
 * Returns how many memberships changed.
 */
export async function recomputeMappedRoles(tx: Tx, organizationId: string, accountIds: readonly string[], actor: Actor): Promise<number> {
  if (accountIds.length === 0) return 0;
  const computed = await tx<{ accountId: string; roles: string[]; mappingIds: string[] }[]>`
    select t.account_id,
           coalesce(array_agg(distinct r.role order by r.role) filter (where r.role is not null), '{}') as roles,
           coalesce(array_agg(distinct m.id) filter (where m.id is not null), '{}') as mapping_ids
    from unnest(${accountIds as string[]}::uuid[]) as t(account_id)
    left join group_members gm on gm.organization_id = ${organizationId} and gm.account_id = t.account_id
    left join groups g on g.organization_id = ${organizationId} and g.id = gm.group_id
    left join group_role_mappings m on m.organization_id = ${organizationId}
      and (m.group_id = g.id or lower(m.group_name) = lower(g.display_name))
    left join lateral unnest(m.roles) as r(role) on true
    group by t.account_id`;
  const wanted = new Map(computed.map((c) => [c.accountId, c]));
  const current = await tx<Membership[]>`
    select * from memberships
    where organization_id = ${organizationId} and account_id = any(${accountIds as string[]}::uuid[]) and status <> 'removed'
    order by account_id
    for update`;
  let changed = 0;
  for (const before of current) {
    const target = wanted.get(before.accountId)!;
    let roles = target.roles;
    const sorted = [...before.mappedRoles].sort();
    if (sorted.join() === roles.join()) continue;
    if (sorted.includes(OWNER_ROLE) && !roles.includes(OWNER_ROLE) && !before.roles.includes(OWNER_ROLE)) {
      try {
        await assertAnotherOwnerRemains(tx, before);
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        roles = [...roles, OWNER_ROLE].sort();
        if (sorted.join() === roles.join()) continue;
      }
    }
    const [after] = await tx<Membership[]>`
      update memberships set mapped_roles = ${roles}::text[], updated_at = now()
      where organization_id = ${organizationId} and account_id = ${before.accountId}
      returning *`;
    await recordRoleChange(tx, before, after!, actor, { cause: 'group mapping', mappingIds: target.mappingIds });
    changed += 1;
  }
  return changed;
}

export async function listGroupRoleMappings(db: Db, organizationId: string): Promise<GroupRoleMapping[]> {
  return db<GroupRoleMapping[]>`
    select organization_id, id, group_id, group_name, roles from group_role_mappings
    where organization_id = ${organizationId} order by created_at, id`;
}
