import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import type { Actor } from '../../src/core/actor.ts';
import { changeGroupMembers, createGroup, deleteGroup } from '../../src/core/groups.ts';
import { getMembership, joinOrganization, setRoles } from '../../src/core/memberships.ts';
import {
  createGroupRoleMapping,
  deleteGroupRoleMapping,
  recomputeMappedRoles,
  updateGroupRoleMapping,
} from '../../src/core/role-mapping.ts';
import { PERMISSIONS } from '../../src/core/permissions.ts';
import { BUILT_IN_ROLES } from '../../src/core/roles.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

const scim: Actor = { type: 'scim_token', id: 't', name: 'okta', channel: 'scim' };
const admin: Actor = { type: 'admin_key', id: 'k', name: 'key', channel: 'admin', permissions: PERMISSIONS };
const adminRole: Actor = {
  type: 'admin_key',
  id: 'k2',
  name: 'admin key',
  channel: 'admin',
  permissions: BUILT_IN_ROLES.admin!.permissions,
};
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
/** The member's latest role change entry. */
const lastRoleChange = async (id: string) =>
  (
    await ctx.sql`select details from audit_log where action = 'member.role_changed' and target_id = ${id} order by id desc limit 1`
  )[0]!.details;
const roles = async (id: string) => {
  const m = await getMembership(ctx.sql, orgId, id);
  return { roles: m!.roles, mapped: m!.mappedRoles };
};

describe('group to role mapping', () => {
  it('grants mapped roles when a member joins a mapped group and takes them away again; direct roles stay', async () => {
    const group = await createGroup(
      ctx.sql,
      { organizationId: orgId, source: 'scim', displayName: 'Org Admins' },
      scim,
    );
    const mapping = await createGroupRoleMapping(
      ctx.sql,
      { organizationId: orgId, groupId: group.id, roles: ['admin'] },
      admin,
    );
    const id = await person(['viewer']);
    await changeGroupMembers(ctx.sql, orgId, group.id, { add: [id] }, scim);
    await reconcile();
    expect(await roles(id)).toEqual({ roles: ['viewer'], mapped: ['admin'] });
    const [audit] =
      await ctx.sql`select details from audit_log where action = 'member.role_changed' and target_id = ${id}`;
    expect(audit!.details).toMatchObject({ cause: 'group mapping', mappingIds: [mapping.id], to: ['admin', 'viewer'] });

    await updateGroupRoleMapping(ctx.sql, orgId, mapping.id, ['billing'], admin);
    await reconcile();
    expect(await roles(id)).toEqual({ roles: ['viewer'], mapped: ['billing'] });
    expect(await lastRoleChange(id)).toMatchObject({
      cause: 'group mapping',
      mappingIds: [mapping.id],
      from: ['admin', 'viewer'],
      to: ['billing', 'viewer'],
      events: ['mapping.updated'],
    });

    // Leaving the group: the entry names the mapping that granted the removed role, and the group.
    await changeGroupMembers(ctx.sql, orgId, group.id, { remove: [id] }, scim);
    await reconcile();
    expect(await roles(id)).toEqual({ roles: ['viewer'], mapped: [] });
    expect(await lastRoleChange(id)).toEqual({
      cause: 'group mapping',
      mappingIds: [mapping.id],
      groupIds: [group.id],
      events: ['group.members_changed'],
      from: ['billing', 'viewer'],
      to: ['viewer'],
      roles: ['viewer'],
      mappedRoles: [],
    });
  });

  it('maps by name, case-insensitively, for SAML groups; removing the mapping removes the role', async () => {
    const id = await person();
    const group = await createGroup(ctx.sql, { organizationId: orgId, source: 'saml', displayName: 'FINANCE' }, scim);
    await changeGroupMembers(ctx.sql, orgId, group.id, { add: [id] }, scim);
    const mapping = await createGroupRoleMapping(
      ctx.sql,
      { organizationId: orgId, groupName: 'finance', roles: ['billing', 'viewer'] },
      admin,
    );
    await reconcile();
    expect((await roles(id)).mapped).toEqual(['billing', 'viewer']);
    await deleteGroupRoleMapping(ctx.sql, orgId, mapping.id, admin);
    await reconcile();
    expect((await roles(id)).mapped).toEqual([]);
    expect(await lastRoleChange(id)).toMatchObject({
      cause: 'group mapping',
      mappingIds: [mapping.id],
      events: ['mapping.deleted'],
      from: ['billing', 'member', 'viewer'],
      to: ['member'],
    });
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
    // The mapping went with its group; the entry names the group.
    expect(await lastRoleChange(id)).toMatchObject({
      cause: 'group mapping',
      groupIds: [group.id],
      events: ['group.deleted'],
      from: ['billing', 'member'],
      to: ['member'],
    });
  });

  it('a group deleted while a name mapping still exists: the entry names that mapping', async () => {
    const id = await person();
    const group = await createGroup(ctx.sql, { organizationId: orgId, source: 'scim', displayName: 'Auditors' }, scim);
    const mapping = await createGroupRoleMapping(
      ctx.sql,
      { organizationId: orgId, groupName: 'auditors', roles: ['viewer'] },
      admin,
    );
    await changeGroupMembers(ctx.sql, orgId, group.id, { add: [id] }, scim);
    await reconcile();
    await deleteGroup(ctx.sql, orgId, group.id, scim);
    await reconcile();
    expect(await lastRoleChange(id)).toMatchObject({
      mappingIds: [mapping.id],
      groupIds: [group.id],
      from: ['member', 'viewer'],
      to: ['member'],
    });
  });

  it('an admin can neither map a group to owner nor change or delete a mapping that grants it, nor move people in a group mapped to it', async () => {
    const group = await createGroup(ctx.sql, { organizationId: orgId, source: 'local', displayName: 'Leads' }, admin);
    const refused = await createGroupRoleMapping(
      ctx.sql,
      { organizationId: orgId, groupId: group.id, roles: ['owner'] },
      adminRole,
    ).catch((e) => e);
    expect(refused).toMatchObject({ code: 'forbidden', details: { missing: ['billing:manage'] } });
    const owners = await createGroupRoleMapping(
      ctx.sql,
      { organizationId: orgId, groupId: group.id, roles: ['owner'] },
      admin,
    );
    await expect(updateGroupRoleMapping(ctx.sql, orgId, owners.id, ['viewer'], adminRole)).rejects.toMatchObject({
      code: 'forbidden',
    });
    await expect(deleteGroupRoleMapping(ctx.sql, orgId, owners.id, adminRole)).rejects.toMatchObject({
      code: 'forbidden',
    });
    const id = await person(['admin']);
    await expect(
      changeGroupMembers(ctx.sql, orgId, group.id, { add: [id] }, { ...adminRole, type: 'account', id }),
    ).rejects.toMatchObject({
      code: 'forbidden',
      message: expect.stringMatching(/through group membership, the role\(s\) owner/),
    });
    expect(await ctx.sql`select 1 from group_members where group_id = ${group.id}`).toHaveLength(0);
    expect((await ctx.sql`select roles from group_role_mappings where id = ${owners.id}`)[0]!.roles).toEqual(['owner']);
    await deleteGroupRoleMapping(ctx.sql, orgId, owners.id, admin);
    // Roles the admin holds itself are fine.
    const viewers = await createGroupRoleMapping(
      ctx.sql,
      { organizationId: orgId, groupId: group.id, roles: ['viewer'] },
      adminRole,
    );
    await changeGroupMembers(ctx.sql, orgId, group.id, { add: [id] }, adminRole);
    await deleteGroupRoleMapping(ctx.sql, orgId, viewers.id, adminRole);
  });

  it('refuses bad mappings', async () => {
    await expect(
      createGroupRoleMapping(ctx.sql, { organizationId: orgId, groupName: 'x', roles: ['wizard'] }, admin),
    ).rejects.toThrow(/unknown role/);
    await expect(
      createGroupRoleMapping(ctx.sql, { organizationId: orgId, groupName: 'x', roles: [] }, admin),
    ).rejects.toThrow(/at least one role/);
    await expect(
      createGroupRoleMapping(ctx.sql, { organizationId: orgId, groupId: crypto.randomUUID(), roles: ['admin'] }, admin),
    ).rejects.toThrow(/not found/);
    await expect(createGroupRoleMapping(ctx.sql, { organizationId: orgId, roles: ['admin'] }, admin)).rejects.toThrow(
      /either groupId or groupName/,
    );
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
    expect(await lastRoleChange(id)).toMatchObject({
      cause: 'repair',
      mappingIds: [],
      from: ['admin', 'member'],
      to: ['member'],
    });
  });

  // Probed from a second session: a real PostgreSQL only (the embedded one has a single session).
  it.skipIf(!process.env.DATABASE_URL)('a recompute locks only the members whose mapped roles it changes', async () => {
    const group = await createGroup(ctx.sql, { organizationId: orgId, source: 'scim', displayName: 'Lockers' }, scim);
    await createGroupRoleMapping(ctx.sql, { organizationId: orgId, groupId: group.id, roles: ['billing'] }, admin);
    const [settled, drifted] = [await person(), await person()];
    await changeGroupMembers(ctx.sql, orgId, group.id, { add: [settled, drifted] }, scim);
    await reconcile();
    await ctx.sql`update memberships set mapped_roles = '{}' where organization_id = ${orgId} and account_id = ${drifted}`;
    // Another session asks, without waiting, for the row lock of each member while the
    // recompute's transaction is still open: granted only if the recompute left that row alone.
    const lockable = async (id: string) => {
      const other = await ctx.sql.reserve();
      try {
        await other`begin`;
        await other`select 1 from memberships where organization_id = ${orgId} and account_id = ${id} for update nowait`;
        return true;
      } catch (error) {
        if ((error as { code?: string }).code === '55P03') return false;
        throw error;
      } finally {
        await other`rollback`;
        other.release();
      }
    };
    const seen = await ctx.sql.begin(async (tx) => {
      const changed = await recomputeMappedRoles(tx, orgId, [settled, drifted], scim, { kind: 'repair' });
      return { changed, settled: await lockable(settled), drifted: await lockable(drifted) };
    });
    expect(seen).toEqual({ changed: 1, settled: true, drifted: false });
    expect((await roles(drifted)).mapped).toEqual(['billing']);
  });
});
