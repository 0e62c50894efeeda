import type { Db } from '../storage/database.ts';
import { conflict, invalid } from './errors.ts';
import type { Actor } from './actor.ts';
import { recordAudit } from './audit.ts';
import { isPermission, PERMISSIONS, type Permission } from './permissions.ts';

export const BUILT_IN_ROLES: Readonly<Record<string, { name: string; permissions: readonly Permission[] }>> = {
  owner: { name: 'Owner', permissions: PERMISSIONS },
  admin: {
    name: 'Admin',
    permissions: ['members:manage', 'members:view', 'org:manage', 'workspaces:create', 'workspaces:view_all'],
  },
  member: { name: 'Member', permissions: ['members:view', 'workspaces:create'] },
  billing: { name: 'Billing', permissions: ['billing:manage', 'members:view'] },
  viewer: { name: 'Viewer', permissions: ['members:view', 'workspaces:view_all'] },
};

export const OWNER_ROLE = 'owner';

export interface Role {
  key: string;
  name: string;
  permissions: Permission[];
  builtIn: boolean;
}

export async function listRoles(db: Db, organizationId: string): Promise<Role[]> {
  const custom = await db<{ key: string; name: string; permissions: Permission[] }[]>`
    select key, name, permissions from roles where organization_id = ${organizationId} order by key`;
  return [
    ...Object.entries(BUILT_IN_ROLES).map(([key, r]) => ({
      key,
      name: r.name,
      permissions: [...r.permissions],
      builtIn: true,
    })),
    ...custom.map((r) => ({ ...r, builtIn: false })),
  ];
}

/** Throws unless every key names a built-in role or one of the organization's custom roles. */
export async function assertRolesExist(db: Db, organizationId: string, keys: readonly string[]): Promise<void> {
  const unknown = keys.filter((k) => !(k in BUILT_IN_ROLES));
  if (unknown.length === 0) return;
  const found = await db<{ key: string }[]>`
    select key from roles where organization_id = ${organizationId} and key = any(${unknown}::text[])
    for key share`; // a role being deleted (locked for update) waits for this change, or this for it
  const missing = unknown.filter((k) => !found.some((f) => f.key === k));
  if (missing.length > 0) throw invalid(`unknown role(s): ${missing.join(', ')}`, { roles: missing });
}

/** The union of the permissions of the given roles. */
export async function permissionsOf(db: Db, organizationId: string, keys: readonly string[]): Promise<Permission[]> {
  const granted = new Set([...(await permissionsByRole(db, organizationId, keys)).values()].flat());
  return PERMISSIONS.filter((p) => granted.has(p));
}

/** Each role's permissions (built-in or the organization's custom roles; unknown keys have none). */
export async function permissionsByRole(
  db: Db,
  organizationId: string,
  keys: readonly string[],
): Promise<Map<string, readonly Permission[]>> {
  const result = new Map<string, readonly Permission[]>();
  const custom: string[] = [];
  for (const key of keys) {
    const builtIn = BUILT_IN_ROLES[key];
    if (builtIn) result.set(key, builtIn.permissions);
    else custom.push(key);
  }
  if (custom.length > 0) {
    const rows = await db<{ key: string; permissions: Permission[] }[]>`
      select key, permissions from roles where organization_id = ${organizationId} and key = any(${custom}::text[])`;
    for (const r of rows) result.set(r.key, r.permissions);
  }
  return result;
}

export async function createCustomRole(
  db: Db,
  organizationId: string,
  input: { key: string; name: string; permissions: string[] },
  actor: Actor,
): Promise<Role> {
  if (input.key in BUILT_IN_ROLES) throw conflict(`role ${input.key} is built in`);
  const bad = input.permissions.filter((p) => !isPermission(p));
  if (bad.length > 0) throw invalid(`unknown permission(s): ${bad.join(', ')}`, { permissions: bad });
  const [row] = await db<{ key: string }[]>`
    insert into roles (organization_id, key, name, permissions)
    values (${organizationId}, ${input.key}, ${input.name}, ${input.permissions}::text[])
    on conflict do nothing returning key`;
  if (!row) throw conflict(`role ${input.key} already exists`);
  await recordAudit(
    db,
    organizationId,
    actor,
    'role.created',
    { type: 'role', id: input.key },
    { permissions: input.permissions },
  );
  return { key: input.key, name: input.name, permissions: input.permissions as Permission[], builtIn: false };
}
