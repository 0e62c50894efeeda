/** What a role may do; roles (roles.ts) are named sets of these. */
export const PERMISSIONS = [
  'members:manage',
  'members:view',
  'org:manage',
  'billing:manage',
  'workspaces:create',
  'workspaces:view_all',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

export function isPermission(value: string): value is Permission {
  return (PERMISSIONS as readonly string[]).includes(value);
}
