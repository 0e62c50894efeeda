import type { Db, Tx } from '../storage/database.ts';
import { inTransaction } from '../storage/database.ts';
import type { Actor } from './actor.ts';
import { DomainError, invalid, notFound } from './errors.ts';
import { emitEvent } from './events.ts';
import { recordAudit } from './audit.ts';
import { isUuid } from './ids.ts';
import { assertHoldsPermissionsOf } from './authority.ts';
import { assertAnotherOwnerRemains, recordRoleChange, symmetricDifference, type Membership } from './memberships.ts';
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
  if (groupName !== undefined && (groupName.length < 1 || groupName.length > 256))
    throw invalid('groupName must be 1 to 256 characters');
  const roles = [...new Set(input.roles)];
  if (roles.length === 0) throw invalid('a mapping needs at least one role');
  return inTransaction(db, async (tx) => {
    await assertRolesExist(tx, input.organizationId, roles);
    await assertHoldsPermissionsOf(tx, input.organizationId, actor, [{ roles, reason: 'map a group to the role(s)' }]);
    if (byId) {
      const [group] =
        await tx`select 1 from groups where organization_id = ${input.organizationId} and id = ${input.groupId!}`;
      if (!group) throw notFound('group', { id: input.groupId });
    }
    // Held until commit: joins and group membership changes written meanwhile wait, and then see
    // this mapping (migration 115). Changing or deleting a mapping needs no lock: one that exists,
    // or the mapped roles it gave, already make them wait for the reconciler.
    await tx`select orgsync_role_mapping_lock(${input.organizationId})`;
    const [mapping] = await tx<GroupRoleMapping[]>`
      insert into group_role_mappings (organization_id, group_id, group_name, roles)
      values (${input.organizationId}, ${input.groupId ?? null}, ${groupName ?? null}, ${roles}::text[])
      returning organization_id, id, group_id, group_name, roles`;
    await announce(tx, mapping!, 'mapping.created', actor);
    return mapping!;
  });
}

/** Changes the roles a mapping grants; members follow when the reconciler handles the event. */
export async function updateGroupRoleMapping(
  db: Db,
  organizationId: string,
  id: string,
  roles: string[],
  actor: Actor,
): Promise<GroupRoleMapping> {
  if (!isUuid(id)) throw notFound('mapping', { id });
  const wanted = [...new Set(roles)];
  if (wanted.length === 0) throw invalid('a mapping needs at least one role');
  return inTransaction(db, async (tx) => {
    await assertRolesExist(tx, organizationId, wanted);
    const [before] = await tx<GroupRoleMapping[]>`
      select organization_id, id, group_id, group_name, roles from group_role_mappings
      where organization_id = ${organizationId} and id = ${id} for update`;
    if (!before) throw notFound('mapping', { id });
    await assertHoldsPermissionsOf(tx, organizationId, actor, [
      {
        roles: symmetricDifference(before.roles, wanted),
        reason: 'grant or take away, through a mapping, the role(s)',
      },
    ]);
    const [mapping] = await tx<GroupRoleMapping[]>`
      update group_role_mappings set roles = ${wanted}::text[], updated_at = now()
      where organization_id = ${organizationId} and id = ${id}
      returning organization_id, id, group_id, group_name, roles`;
    await announce(tx, mapping!, 'mapping.updated', actor, { previousRoles: before.roles });
    return mapping!;
  });
}

export async function deleteGroupRoleMapping(db: Db, organizationId: string, id: string, actor: Actor): Promise<void> {
  if (!isUuid(id)) throw notFound('mapping', { id });
  await inTransaction(db, async (tx) => {
    const [mapping] = await tx<GroupRoleMapping[]>`
      delete from group_role_mappings where organization_id = ${organizationId} and id = ${id}
      returning organization_id, id, group_id, group_name, roles`;
    if (!mapping) throw notFound('mapping', { id });
    // Refused after the delete: the transaction rolls it back.
    await assertHoldsPermissionsOf(tx, organizationId, actor, [
      { roles: mapping.roles, reason: 'take away, through a mapping, the role(s)' },
    ]);
    await announce(tx, mapping, 'mapping.deleted', actor);
  });
}

async function announce(
  tx: Tx,
  m: GroupRoleMapping,
  type: string,
  actor: Actor,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const details = { mappingId: m.id, groupId: m.groupId, groupName: m.groupName, roles: m.roles, ...extra };
  await recordAudit(tx, m.organizationId, actor, type, { type: 'mapping', id: m.id }, details);
  await emitEvent(tx, m.organizationId, type, details, actor);
}

/** Members of the groups a mapping names (what a change of that mapping affects). */
export async function membersOfMappedGroups(
  db: Db,
  organizationId: string,
  groupId: string | null,
  groupName: string | null,
): Promise<string[]> {
  const rows = await db<{ accountId: string }[]>`
    select distinct gm.account_id from group_members gm
    join groups g on g.organization_id = gm.organization_id and g.id = gm.group_id
    where gm.organization_id = ${organizationId}
      and (g.id = ${groupId} or lower(g.display_name) = lower(${groupName}))`;
  return rows.map((r) => r.accountId);
}

/**
 * What made the mapped roles of a member change, for the audit entry: an event (a mapping
 * created, changed or deleted; a group's members, name or existence changed; a join) or the
 * periodic full pass ('repair', which cannot tell what caused the drift it repairs).
 */
export interface RoleChangeTrigger {
  event: string;
  /** The mapping an event concerned, and the roles it granted before the event. */
  mappingId?: string;
  mappingRoles?: string[];
  /** The group an event concerned, and names it had (a deleted group is gone from the table). */
  groupId?: string;
  groupNames?: string[];
}
export type RoleChangeCause =
  { kind: 'repair' } | { kind: 'event'; triggers: ReadonlyMap<string, readonly RoleChangeTrigger[]> };

/**
 * Recomputes `mapped_roles` of the given members from their groups and the organization's
 * mappings, and writes only those that changed. Each change is audited with its cause: the
 * mappings that grant the added roles, the mappings that granted the removed ones (found through
 * the triggering event: its mapping, or the mappings of its group), and the event's group.
 * The last owner keeps a mapped owner role even when its mapping goes away.
 * Returns how many memberships changed.
 */
export async function recomputeMappedRoles(
  tx: Tx,
  organizationId: string,
  accountIds: readonly string[],
  actor: Actor,
  cause: RoleChangeCause = { kind: 'event', triggers: new Map() },
): Promise<number> {
  if (accountIds.length === 0) return 0;
  const computed = await tx<{ accountId: string; roles: string[]; grants: { role: string; mappingId: string }[] }[]>`
    select t.account_id,
           coalesce(array_agg(distinct r.role order by r.role) filter (where r.role is not null), '{}') as roles,
           coalesce(jsonb_agg(distinct jsonb_build_object('role', r.role, 'mappingId', m.id)) filter (where r.role is not null), '[]') as grants
    from unnest(${accountIds as string[]}::uuid[]) as t(account_id)
    left join group_members gm on gm.organization_id = ${organizationId} and gm.account_id = t.account_id
    left join groups g on g.organization_id = ${organizationId} and g.id = gm.group_id
    left join group_role_mappings m on m.organization_id = ${organizationId}
      and (m.group_id = g.id or lower(m.group_name) = lower(g.display_name))
    left join lateral unnest(m.roles) as r(role) on true
    group by t.account_id`;
  const wanted = new Map(computed.map((c) => [c.accountId, c]));
  // Only the members whose mapped roles differ are locked (and compared again under the lock): a
  // pass that changes nothing, as the periodic repair over every membership mostly does, locks no
  // row, so it neither rewrites every row's lock bits nor holds up the members' own changes.
  const differing = (
    await tx<Pick<Membership, 'accountId' | 'mappedRoles'>[]>`
      select account_id, mapped_roles from memberships
      where organization_id = ${organizationId} and account_id = any(${accountIds as string[]}::uuid[]) and status <> 'removed'`
  )
    .filter((m) => sortedRoles(m.mappedRoles) !== wanted.get(m.accountId)!.roles.join())
    .map((m) => m.accountId);
  if (differing.length === 0) return 0;
  const current = await tx<Membership[]>`
    select * from memberships
    where organization_id = ${organizationId} and account_id = any(${differing}::uuid[]) and status <> 'removed'
    order by account_id
    for update`;
  let groupMappings: Promise<GroupMappingRow[]> | null = null;
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
    const added = roles.filter((r) => !sorted.includes(r));
    const removed = sorted.filter((r) => !roles.includes(r));
    const mappingIds = new Set(target.grants.filter((g) => added.includes(g.role)).map((g) => g.mappingId));
    const groupIds = new Set<string>();
    const triggers = cause.kind === 'event' ? (cause.triggers.get(before.accountId) ?? []) : [];
    for (const t of triggers) {
      if (t.groupId) groupIds.add(t.groupId);
      if (removed.length === 0) continue;
      if (t.mappingId && (!t.mappingRoles || t.mappingRoles.some((r) => removed.includes(r))))
        mappingIds.add(t.mappingId);
      if (t.groupId || t.groupNames?.length) {
        groupMappings ??= mappingsOfTriggerGroups(tx, organizationId, cause);
        for (const m of await groupMappings) {
          const concerns =
            (t.groupId !== undefined && m.groupId === t.groupId) ||
            (m.name !== null && (t.groupNames ?? []).some((n) => n.toLowerCase() === m.name));
          if (concerns && m.roles.some((r) => removed.includes(r))) mappingIds.add(m.id);
        }
      }
    }
    const [after] = await tx<Membership[]>`
      update memberships set mapped_roles = ${roles}::text[], updated_at = now()
      where organization_id = ${organizationId} and account_id = ${before.accountId}
      returning *`;
    await recordRoleChange(tx, before, after!, actor, {
      cause: cause.kind === 'repair' ? 'repair' : 'group mapping',
      mappingIds: [...mappingIds].sort(),
      ...(groupIds.size ? { groupIds: [...groupIds].sort() } : {}),
      ...(triggers.length ? { events: [...new Set(triggers.map((t) => t.event))] } : {}),
    });
    changed += 1;
  }
  return changed;
}

/** Roles in the order recomputeMappedRoles compares them in (as `sorted` in its loop), joined. */
const sortedRoles = (roles: readonly string[]) => [...roles].sort().join();

interface GroupMappingRow {
  id: string;
  roles: string[];
  /** The trigger group the mapping applies to (by id, or by the group's current name). */
  groupId: string | null;
  /** The mapping's group name, lower case, for matching names a trigger carries. */
  name: string | null;
}

/** The mappings of the groups the triggers name: by id, by their current name, or by a name they had. */
async function mappingsOfTriggerGroups(
  tx: Tx,
  organizationId: string,
  cause: RoleChangeCause,
): Promise<GroupMappingRow[]> {
  if (cause.kind !== 'event') return [];
  const all = [...cause.triggers.values()].flat();
  const ids = [...new Set(all.flatMap((t) => (t.groupId ? [t.groupId] : [])))];
  const names = [...new Set(all.flatMap((t) => (t.groupNames ?? []).map((n) => n.toLowerCase())))];
  return tx<GroupMappingRow[]>`
    select m.id, m.roles, g.id as group_id, null as name
    from groups g join group_role_mappings m on m.organization_id = g.organization_id
      and (m.group_id = g.id or lower(m.group_name) = lower(g.display_name))
    where g.organization_id = ${organizationId} and g.id = any(${ids}::uuid[])
    union all
    select m.id, m.roles, null, lower(m.group_name)
    from group_role_mappings m
    where m.organization_id = ${organizationId} and lower(m.group_name) = any(${names}::text[])`;
}

export async function listGroupRoleMappings(db: Db, organizationId: string): Promise<GroupRoleMapping[]> {
  return db<GroupRoleMapping[]>`
    select organization_id, id, group_id, group_name, roles from group_role_mappings
    where organization_id = ${organizationId} order by created_at, id`;
}
