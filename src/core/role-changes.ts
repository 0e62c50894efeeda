import { inTransaction, type Db, type Tx } from '../storage/database.ts';
import type { Actor } from './actor.ts';
import { recordAudit } from './audit.ts';
import { assertHoldsPermissions, assertHoldsPermissionsOf } from './authority.ts';
import { conflict, invalid, notFound } from './errors.ts';
import { emitEvent } from './events.ts';
import { effectiveRoles, recordRoleChange, type Membership } from './memberships.ts';
import { PERMISSIONS, type Permission } from './permissions.ts';
import { assertRolesExist, BUILT_IN_ROLES, type Role } from './roles.ts';

/** What still names a custom role: deleting it must take it from all of these. */
export interface RoleUsage {
  /** Members (invited ones included) holding it directly or through a group mapping. */
  members: number;
  mappings: number;
  /** Live admin API keys acting with it. */
  apiKeys: number;
  defaultRole: boolean;
}

export interface RoleDeletion extends RoleUsage {
  key: string;
  /** The role that took its place, or null when nothing used it. */
  reassignedTo: string | null;
}

/** Renames a custom role or changes its permissions; its holders gain or lose them at once. */
export async function updateCustomRole(
  db: Db,
  organizationId: string,
  key: string,
  changes: { name?: string; permissions?: Permission[] },
  actor: Actor,
): Promise<Role> {
  return inTransaction(db, async (tx) => {
    const before = await lockCustomRole(tx, organizationId, key, 'changed');
    const permissions = changes.permissions ? PERMISSIONS.filter((p) => changes.permissions!.includes(p)) : undefined;
    if (permissions) {
      // Everyone holding the role gets the new set: the caller must hold what it adds and what it takes away.
      const changed = PERMISSIONS.filter((p) => permissions.includes(p) !== before.permissions.includes(p));
      assertHoldsPermissions(actor, changed, `give or take away, through the role ${key}, the permission(s)`);
    }
    const [row] = await tx<{ name: string; permissions: Permission[] }[]>`
      update roles set name = coalesce(${changes.name ?? null}, name),
        permissions = coalesce(${permissions ?? null}::text[], permissions)
      where organization_id = ${organizationId} and key = ${key}
      returning name, permissions`;
    await recordAudit(
      tx,
      organizationId,
      actor,
      'role.updated',
      { type: 'role', id: key },
      {
        before: { name: before.name, permissions: before.permissions },
        after: { name: row!.name, permissions: row!.permissions },
      },
    );
    return { key, name: row!.name, permissions: row!.permissions, builtIn: false };
  });
}

/** How many members, mappings and API keys use a custom role, and whether it is the default role. */
export async function roleUsage(db: Db, organizationId: string, key: string): Promise<RoleUsage> {
  const [row] = await db<RoleUsage[]>`
    select
      (select count(*)::int from memberships where organization_id = ${organizationId} and status <> 'removed'
         and (${key} = any (roles) or ${key} = any (mapped_roles))) as members,
      (select count(*)::int from group_role_mappings where organization_id = ${organizationId} and ${key} = any (roles)) as mappings,
      (select count(*)::int from credentials where organization_id = ${organizationId} and kind = 'admin'
         and revoked_at is null and (expires_at is null or expires_at > now()) and ${key} = any (roles)) as api_keys,
      (select default_role = ${key} from organizations where id = ${organizationId}) as default_role`;
  return row!;
}

/**
 * Deletes a custom role. A role still in use is refused (409 with its usage), unless
 * `reassignTo` names the role that takes its place for every member, mapping and API key (and
 * as the default role); the caller must then hold the permissions of both roles and of the
 * members it changes. Members' role changes are audited and announced one by one.
 */
export async function deleteCustomRole(
  db: Db,
  organizationId: string,
  key: string,
  reassignTo: string | undefined,
  actor: Actor,
): Promise<RoleDeletion> {
  return inTransaction(db, async (tx) => {
    const role = await lockCustomRole(tx, organizationId, key, 'deleted');
    // The lock above waits for changes that are assigning the role (assertRolesExist), so this count sees them.
    const usage = await roleUsage(tx, organizationId, key);
    const inUse = usage.members + usage.mappings + usage.apiKeys > 0 || usage.defaultRole;
    if (inUse && reassignTo === undefined) {
      throw conflict(
        `the role ${key} is used by ${describeUsage(usage)}: choose a role to reassign them to (reassignTo), or change them first`,
        { ...usage },
      );
    }
    const replacement = inUse ? reassignTo! : null;
    if (replacement !== null) {
      if (replacement === key) throw invalid('reassignTo must name another role');
      await assertRolesExist(tx, organizationId, [replacement]);
      await reassign(tx, organizationId, key, replacement, actor);
    }
    await tx`delete from roles where organization_id = ${organizationId} and key = ${key}`;
    const result = { key, reassignedTo: replacement, ...usage };
    await recordAudit(
      tx,
      organizationId,
      actor,
      'role.deleted',
      { type: 'role', id: key },
      {
        name: role.name,
        permissions: role.permissions,
        ...result,
      },
    );
    return result;
  });
}

/** "2 members, 1 group mapping and the default role" */
export function describeUsage(usage: RoleUsage): string {
  const count = (n: number, one: string) => (n ? [`${n} ${one}${n === 1 ? '' : 's'}`] : []);
  const parts = [
    ...count(usage.members, 'member'),
    ...count(usage.mappings, 'group mapping'),
    ...count(usage.apiKeys, 'API key'),
    ...(usage.defaultRole ? ['the default role'] : []),
  ];
  return parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}` : (parts[0] ?? 'nothing');
}

async function lockCustomRole(tx: Tx, organizationId: string, key: string, verb: string) {
  if (key in BUILT_IN_ROLES) throw conflict(`the role ${key} is built in and cannot be ${verb}`, { key });
  const [role] = await tx<{ name: string; permissions: Permission[] }[]>`
    select name, permissions from roles where organization_id = ${organizationId} and key = ${key} for update`;
  if (!role) throw notFound('role', { key });
  return role;
}

/** Puts `to` wherever `from` is: members' direct and mapped roles, mappings, API keys, the default role. */
async function reassign(tx: Tx, organizationId: string, from: string, to: string, actor: Actor): Promise<void> {
  const members = await tx<Membership[]>`
    select * from memberships where organization_id = ${organizationId} and status <> 'removed'
      and (${from} = any (roles) or ${from} = any (mapped_roles))
    order by account_id for update`;
  await assertHoldsPermissionsOf(tx, organizationId, actor, [
    { roles: members.flatMap(effectiveRoles), reason: 'change the roles of members with the role(s)' },
    { roles: [from], reason: 'take away the role' },
    { roles: [to], reason: 'grant instead the role' },
  ]);
  const swap = (roles: readonly string[]) => [...new Set(roles.map((r) => (r === from ? to : r)))];
  for (const before of members) {
    const [after] = await tx<Membership[]>`
      update memberships set roles = ${swap(before.roles)}::text[], mapped_roles = ${swap(before.mappedRoles)}::text[],
        updated_at = now()
      where organization_id = ${organizationId} and account_id = ${before.accountId}
      returning *`;
    await recordRoleChange(tx, before, after!, actor, { roleDeleted: from, reassignedTo: to });
  }
  const mappings = await tx<{ id: string; groupId: string | null; groupName: string | null; roles: string[] }[]>`
    select id, group_id, group_name, roles from group_role_mappings
    where organization_id = ${organizationId} and ${from} = any (roles) for update`;
  for (const m of mappings) {
    const roles = swap(m.roles);
    await tx`update group_role_mappings set roles = ${roles}::text[], updated_at = now()
      where organization_id = ${organizationId} and id = ${m.id}`;
    // As a mapping change through the API: audited, and announced (members' mapped roles already follow).
    const details = { mappingId: m.id, groupId: m.groupId, groupName: m.groupName, roles, previousRoles: m.roles };
    await recordAudit(tx, organizationId, actor, 'mapping.updated', { type: 'mapping', id: m.id }, details);
    await emitEvent(tx, organizationId, 'mapping.updated', details, actor);
  }
  await tx`
    update credentials set roles = array(select distinct unnest(array_replace(roles, ${from}, ${to})))
    where organization_id = ${organizationId} and kind = 'admin' and ${from} = any (roles)`;
  await tx`update organizations set default_role = ${to}, updated_at = now()
    where id = ${organizationId} and default_role = ${from}`;
}
