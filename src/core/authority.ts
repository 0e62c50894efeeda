import type { Db } from '../storage/database.ts';
import type { Actor } from './actor.ts';
import { forbidden } from './errors.ts';
import { isUuid } from './ids.ts';
import { PERMISSIONS, type Permission } from './permissions.ts';
import { OWNER_ROLE, permissionsByRole } from './roles.ts';

/**
 * The permissions an actor acts with, or null when its changes are not limited by a caller's own
 * permissions (the IdP through SCIM, a person signing in or accepting their invitation, the
 * reconciler, the CLI). An admin API key always acts with its roles: one without them holds none.
 */
export function heldPermissions(actor: Actor): readonly Permission[] | null {
  if (actor.permissions) return actor.permissions;
  return actor.type === 'admin_key' ? [] : null;
}

/** What a change touches: roles it grants or takes away, or the roles of a member it changes. */
export interface RoleNeed {
  roles: Iterable<string>;
  /** How the change touches them, e.g. "grant or take away the role(s)". */
  reason: string;
}

/**
 * The rule against privilege escalation, for every channel: a caller may grant or take away only
 * roles whose permissions it holds itself, and may change the roles of or remove only a member
 * whose permissions it holds itself (an owner holds them all). Refuses (403) naming every missing
 * permission in `details.missing`; checks nothing for actors that are not limited.
 */
export async function assertHoldsPermissionsOf(
  db: Db,
  organizationId: string,
  actor: Actor,
  needs: readonly RoleNeed[],
): Promise<void> {
  const held = heldPermissions(actor);
  if (!held) return;
  const keys = [...new Set(needs.flatMap((n) => [...n.roles]))];
  if (keys.length === 0) return;
  const permissions = await permissionsByRole(db, organizationId, keys);
  const missing = new Set<Permission>();
  const reasons: string[] = [];
  for (const need of needs) {
    // Only the roles the caller falls short of are named.
    const beyond = [...new Set(need.roles)].sort().filter((role) => {
      const lacking = (permissions.get(role) ?? []).filter((p) => !held.includes(p));
      lacking.forEach((p) => missing.add(p));
      return lacking.length > 0;
    });
    if (beyond.length) reasons.push(`${need.reason} ${beyond.join(', ')}`);
  }
  if (missing.size === 0) return;
  const list = PERMISSIONS.filter((p) => missing.has(p));
  throw forbidden(`missing permission: ${list.join(', ')} (needed to ${reasons.join('; to ')})`, { missing: list });
}

/** As assertHoldsPermissionsOf, for permissions named directly (those a custom role is given). */
export function assertHoldsPermissions(actor: Actor, permissions: readonly Permission[], reason: string): void {
  const held = heldPermissions(actor);
  if (!held) return;
  const missing = PERMISSIONS.filter((p) => permissions.includes(p) && !held.includes(p));
  if (missing.length > 0)
    throw forbidden(`missing permission: ${missing.join(', ')} (needed to ${reason})`, { missing });
}

/**
 * Whoever configures how people arrive (an IdP's SCIM token, an SSO connection) can act on every
 * member, owners included: the IdP provisions, suspends and deletes anyone, and asserts anyone's
 * email. So only a caller holding every permission (an owner's) may.
 */
export function assertMayConfigureIdentity(db: Db, organizationId: string, actor: Actor, what: string): Promise<void> {
  return assertHoldsPermissionsOf(db, organizationId, actor, [
    { roles: [OWNER_ROLE], reason: `${what}, which acts on every member like the role` },
  ]);
}

/** Roles the organization's mappings by group name grant to a group with one of `names` (case-insensitively). */
export async function rolesMappedToNames(db: Db, organizationId: string, names: readonly string[]): Promise<string[]> {
  const [row] = await db<{ roles: string[] }[]>`
    select coalesce(array_agg(distinct r.role), '{}') as roles
    from group_role_mappings m cross join lateral unnest(m.roles) as r(role)
    where m.organization_id = ${organizationId} and lower(m.group_name) = any(${names.map((n) => n.toLowerCase())}::text[])`;
  return row?.roles ?? [];
}

/** Roles the organization's mappings grant to members of any of the groups (by id or by name). */
export async function rolesMappedToGroups(
  db: Db,
  organizationId: string,
  groupIds: readonly string[],
): Promise<string[]> {
  if (groupIds.length === 0) return [];
  const [row] = await db<{ roles: string[] }[]>`
    select coalesce(array_agg(distinct r.role), '{}') as roles
    from groups g
    join group_role_mappings m on m.organization_id = g.organization_id and (m.group_id = g.id or lower(m.group_name) = lower(g.display_name))
    cross join lateral unnest(m.roles) as r(role)
    where g.organization_id = ${organizationId} and g.id = any(${groupIds.filter(isUuid)}::uuid[])`;
  return row?.roles ?? [];
}
