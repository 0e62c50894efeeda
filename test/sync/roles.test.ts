import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import type { Actor } from '../../src/core/actor.ts';
import { changeGroupMembers, createGroup, deleteGroup } from '../../src/core/groups.ts';
import { getMembership, joinOrganization, setRoles } from '../../src/core/memberships.ts';
import { createGroupRoleMapping, deleteGroupRoleMapping, updateGroupRoleMapping } from '../../src/core/role-mapping.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

const scim: Actor = { type: 'scim_token', id: 't', name: 'okta', channel: 'scim' };
const admin: Actor = { type: 'admin_key', id: 'k', name: 'key', channel: 'admin' };
let ctx: AppContext;
let orgId: string;
let ownerId: string;
let n = 0;

beforeAll(async () => {
  ctx = await createTestContext();
  const t = await createTestOrganization(ctx, 'mapping');
  orgId = t.organization.id;
  ownerId = t.owner.id;
});
afterAll(async () => ctx.database.close());

async function person(roles?: string[]) {
  n += 1;
  const a = await ensureAccount(ctx.sql, { email: `m${n}@mapping.test` });
  await joinOrganization(ctx.sql, { organizationId: orgId, accountId: a.id, source: 'scim', roles }, scim);
  return a.id;
}
const reconcile = () => createReconciler(ctx).events();
const roles = async (id: string) => {
  const m = await getMembership(ctx.sql, orgId, id);
  return { roles: m!.roles, mapped: m!.mappedRoles };
};

describe('group to role mapping', () => {
  it('grants mapped roles when a member joins a mapped group and takes them away again; direct roles stay', async () => {
    const group = await createGroup(ctx.sql, { organizationId: orgId, source: 'scim', displayName: 'Org Admins' }, scim);
    const mapping = await createGroupRoleMapping(ctx.sql, { organizationId: orgId, groupId: group.id, roles: ['admin'] }, admin);
    const id = await person(['viewer']);
    await changeGroupMembers(ctx.sql, orgId, group.id, { add: [id] }, scim);
    await reconcile();
    expect(await roles(id)).toEqual({ roles: ['viewer'], mapped: ['admin'] });
    const [audit] = await ctx.sql`select details from audit_log where action = 'member.role_changed' and target_id = ${id}`;
    expect(audit!.details).toMatchObject({ cause: 'group mapping', mappingIds: [mapping.id], to: ['admin', 'viewer'] });

    await updateGroupRoleMapping(ctx.sql, orgId, mapping.id, ['billing'], admin);
    await reconcile();
    expect(await roles(id)).toEqual({ roles: ['viewer'], mapped: ['billing'] });

    await changeGroupMembers(ctx.sql, orgId, group.id, { remove: [id] }, scim);
    await reconcile();
    expect(await roles(id)).toEqual({ roles: ['viewer'], mapped: [] });
  });

  it('maps by name, case-insensitively, for SAML groups; removing the mapping removes the role', async () => {
    const id = await person();
    const group = await createGroup(ctx.sql, { organizationId: orgId, source: 'saml', displayName: 'FINANCE' }, scim);
    await changeGroupMembers(ctx.sql, orgId, group.id, { add: [id] }, scim);
    const mapping = await createGroupRoleMapping(ctx.sql, { organizationId: orgId, groupName: 'finance', roles: ['billing', 'viewer'] }, admin);
    await reconcile();
    expect((await roles(id)).mapped).toEqual(['billing', 'viewer']);
    await deleteGroupRoleMapping(ctx.sql, orgId, mapping.id, admin);
    await reconcile();
    expect((await roles(id)).mapped).toEqual([]);
  });

  it('deleting a mapped group takes its roles away', async () => {
    const id = await person();
    const group = await createGroup(ctx.sql, { organizationId: orgId, source: 'scim', displayName: 'Temp' }, scim);
    await createGroupRoleMapping(ctx.sql, { organizationId: orgId, groupId: group.id, roles: ['billing'] }, admin);
    await changeGroupMembers(ctx.sql, orgId, group.id, { add: [id] }, scim);
    await reconcile();
    expect((await roles(id)).mapped).toEqual(['billing']);
    await deleteGroup(ctx.sql, orgId, group.id, scim);
    await reconcile();
    expect((await roles(id)).mapped).toEqual([]);
  });

  it('refuses bad mappings', async () => {
    await expect(createGroupRoleMapping(ctx.sql, { organizationId: orgId, groupName: 'x', roles: ['wizard'] }, admin)).rejects.toThrow(/unknown role/);
    await expect(createGroupRoleMapping(ctx.sql, { organizationId: orgId, groupName: 'x', roles: [] }, admin)).rejects.toThrow(/at least one role/);
    await expect(createGroupRoleMapping(ctx.sql, { organizationId: orgId, groupId: crypto.randomUUID(), roles: ['admin'] }, admin)).rejects.toThrow(/not found/);
    await expect(createGroupRoleMapping(ctx.sql, { organizationId: orgId, roles: ['admin'] }, admin)).rejects.toThrow(/either groupId or groupName/);
  });

  it('never demotes the last owner', async () => {
    const id = await person();
    const group = await createGroup(ctx.sql, { organizationId: orgId, source: 'scim', displayName: 'Owners' }, scim);
    await createGroupRoleMapping(ctx.sql, { organizationId: orgId, groupId: group.id, roles: ['owner'] }, admin);
    await changeGroupMembers(ctx.sql, orgId, group.id, { add: [id] }, scim);
    await reconcile();
    await setRoles(ctx.sql, orgId, ownerId, ['member'], admin);
    await changeGroupMembers(ctx.sql, orgId, group.id, { remove: [id] }, scim);
    await reconcile();
    expect((await roles(id)).mapped).toEqual(['owner']);
  });

  it('the full pass repairs drift', async () => {
    const id = await person();
    await reconcile();
    await ctx.sql`update memberships set mapped_roles = '{admin}' where organization_id = ${orgId} and account_id = ${id}`;
    const summary = await createReconciler(ctx).runOnce();
    expect(summary.rolesRepaired).toBeGreaterThanOrEqual(1);
    expect((await roles(id)).mapped).toEqual([]);
  });
});
