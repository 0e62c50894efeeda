import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { createApp } from '../../src/app.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor } from '../../src/core/actor.ts';
import { issueCredential } from '../../src/core/credentials.ts';
import { createGroup } from '../../src/core/groups.ts';
import { joinOrganization } from '../../src/core/memberships.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

let ctx: AppContext;
let app: Express;
let a: Awaited<ReturnType<typeof createTestOrganization>>;
let b: Awaited<ReturnType<typeof createTestOrganization>>;
const actor = systemActor('system', 'test');

beforeAll(async () => {
  ctx = await createTestContext();
  app = createApp(ctx);
  a = await createTestOrganization(ctx, 'roles-a');
  b = await createTestOrganization(ctx, 'roles-b');
});
afterAll(async () => ctx.database.close());

const as = (key: string) => ({ authorization: `Bearer ${key}` });
const createRole = (key: string, permissions: string[], adminKey = a.adminKey) =>
  request(app).post('/api/roles').set(as(adminKey)).send({ key, name: key.toUpperCase(), permissions });
const roleRow = async (organizationId: string, key: string) =>
  (await ctx.sql`select name, permissions from roles where organization_id = ${organizationId} and key = ${key}`)[0];
const auditOf = (action: string, id: string) =>
  ctx.sql<{ actorName: string; details: Record<string, unknown> }[]>`
    select actor_name, details from audit_log
    where organization_id = ${a.organization.id} and action = ${action} and target_id = ${id} order by id`;
async function member(email: string, roles: string[]) {
  const account = await ensureAccount(ctx.sql, { email });
  await joinOrganization(
    ctx.sql,
    { organizationId: a.organization.id, accountId: account.id, source: 'admin', roles },
    actor,
  );
  return account.id;
}
const rolesOf = async (accountId: string) =>
  (
    await ctx.sql<{ roles: string[]; mappedRoles: string[] }[]>`
    select roles, mapped_roles from memberships where organization_id = ${a.organization.id} and account_id = ${accountId}`
  )[0]!;
async function keyWith(roles: string[]) {
  const issued = await issueCredential(
    ctx.sql,
    ctx.config.serverSecret,
    { organizationId: a.organization.id, kind: 'admin', name: `key-${roles.join('-')}`, roles },
    actor,
  );
  return issued;
}

describe('editing a custom role', () => {
  it('renames it and changes its permissions; its holders act with the new ones at once (audited)', async () => {
    await createRole('support', ['members:view']).expect(201);
    const supportKey = await keyWith(['support']);
    await request(app).get('/api/roles').set(as(supportKey.secret)).expect(200);
    await request(app).get('/api/audit').set(as(supportKey.secret)).expect(403);

    const changed = await request(app)
      .patch('/api/roles/support')
      .set(as(a.adminKey))
      .send({ name: 'Support desk', permissions: ['members:manage', 'members:view'] })
      .expect(200);
    expect(changed.body).toEqual({
      key: 'support',
      name: 'Support desk',
      permissions: ['members:manage', 'members:view'],
      builtIn: false,
    });
    await request(app).get('/api/audit').set(as(supportKey.secret)).expect(200);
    const [entry] = await auditOf('role.updated', 'support');
    expect(entry).toEqual({
      actorName: 'setup',
      details: {
        before: { name: 'SUPPORT', permissions: ['members:view'] },
        after: { name: 'Support desk', permissions: ['members:manage', 'members:view'] },
      },
    });
    // Only the name: the permissions stay.
    await request(app).patch('/api/roles/support').set(as(a.adminKey)).send({ name: 'Support' }).expect(200);
    expect(await roleRow(a.organization.id, 'support')).toEqual({
      name: 'Support',
      permissions: ['members:manage', 'members:view'],
    });
  });

  it('refuses built-in roles, unknown roles, other organizations’ roles and bad input, changing nothing', async () => {
    await createRole('auditor', ['members:view']).expect(201);
    const builtIn = await request(app).patch('/api/roles/admin').set(as(a.adminKey)).send({ name: 'X' }).expect(409);
    expect(builtIn.body.message).toBe('the role admin is built in and cannot be changed');
    await request(app).patch('/api/roles/nope').set(as(a.adminKey)).send({ name: 'X' }).expect(404);
    await request(app).patch('/api/roles/auditor').set(as(b.adminKey)).send({ name: 'X' }).expect(404);
    const bad = await request(app)
      .patch('/api/roles/auditor')
      .set(as(a.adminKey))
      .send({ name: '  ', permissions: ['root'] })
      .expect(400);
    expect(bad.body.details.issues.map((i: { path: string }) => i.path).sort()).toEqual(['name', 'permissions.0']);
    await request(app).patch('/api/roles/auditor').set(as(a.adminKey)).send({ key: 'other' }).expect(400);
    expect(await roleRow(a.organization.id, 'auditor')).toEqual({ name: 'AUDITOR', permissions: ['members:view'] });
  });

  it('a caller may add or take away only permissions it holds itself', async () => {
    await createRole('helpdesk', ['members:view']).expect(201);
    const admin = await keyWith(['admin']); // everything but billing:manage
    const refused = await request(app)
      .patch('/api/roles/helpdesk')
      .set(as(admin.secret))
      .send({ permissions: ['members:view', 'billing:manage'] })
      .expect(403);
    expect(refused.body.details).toEqual({ missing: ['billing:manage'] });
    expect((await roleRow(a.organization.id, 'helpdesk'))!.permissions).toEqual(['members:view']);
    await request(app)
      .patch('/api/roles/helpdesk')
      .set(as(admin.secret))
      .send({ permissions: ['members:view', 'members:manage'] })
      .expect(200);
    // Without org:manage, not at all.
    const viewer = await keyWith(['viewer']);
    await request(app).patch('/api/roles/helpdesk').set(as(viewer.secret)).send({ name: 'X' }).expect(403);
  });
});

describe('deleting a custom role', () => {
  it('deletes an unused role (audited); built-in and unknown roles are refused', async () => {
    await createRole('unused', ['members:view']).expect(201);
    const res = await request(app).delete('/api/roles/unused').set(as(a.adminKey)).expect(200);
    expect(res.body).toEqual({
      key: 'unused',
      reassignedTo: null,
      members: 0,
      mappings: 0,
      apiKeys: 0,
      defaultRole: false,
    });
    expect(await roleRow(a.organization.id, 'unused')).toBeUndefined();
    expect(await auditOf('role.deleted', 'unused')).toHaveLength(1);
    await request(app).delete('/api/roles/unused').set(as(a.adminKey)).expect(404);
    const builtIn = await request(app).delete('/api/roles/member').set(as(a.adminKey)).expect(409);
    expect(builtIn.body.message).toBe('the role member is built in and cannot be deleted');
  });

  it('refuses a role in use, naming how many members, mappings and keys use it; nothing changes', async () => {
    await createRole('ops', ['members:view', 'workspaces:create']).expect(201);
    const alice = await member('alice@roles.test', ['ops']);
    await member('bob@roles.test', ['member', 'ops']);
    const group = await createGroup(
      ctx.sql,
      { organizationId: a.organization.id, source: 'local', displayName: 'Operations' },
      actor,
    );
    await request(app)
      .post('/api/group-mappings')
      .set(as(a.adminKey))
      .send({ groupId: group.id, roles: ['ops'] })
      .expect(201);
    await keyWith(['ops']);
    await request(app).patch('/api/organization').set(as(a.adminKey)).send({ defaultRole: 'ops' }).expect(200);

    const refused = await request(app).delete('/api/roles/ops').set(as(a.adminKey)).expect(409);
    expect(refused.body).toEqual({
      error: 'conflict',
      message:
        'the role ops is used by 2 members, 1 group mapping, 1 API key and the default role: choose a role to reassign them to (reassignTo), or change them first',
      details: { members: 2, mappings: 1, apiKeys: 1, defaultRole: true },
    });
    expect(await roleRow(a.organization.id, 'ops')).toBeDefined();
    expect((await rolesOf(alice)).roles).toEqual(['ops']);
    // reassignTo must be another existing role.
    await request(app).delete('/api/roles/ops?reassignTo=ops').set(as(a.adminKey)).expect(400);
    await request(app).delete('/api/roles/ops?reassignTo=nope').set(as(a.adminKey)).expect(400);
    expect(await roleRow(a.organization.id, 'ops')).toBeDefined();
  });

  it('reassigns members (direct and mapped roles), mappings, keys and the default role to the chosen role', async () => {
    const alice = (await ctx.sql`select id from accounts where email = 'alice@roles.test'`)[0]!.id as string;
    const bob = (await ctx.sql`select id from accounts where email = 'bob@roles.test'`)[0]!.id as string;
    // Bob also holds ops through a mapping (as the reconciler would have set it).
    await ctx.sql`update memberships set mapped_roles = '{ops}' where account_id = ${bob}`;

    const res = await request(app).delete('/api/roles/ops?reassignTo=viewer').set(as(a.adminKey)).expect(200);
    expect(res.body).toEqual({
      key: 'ops',
      reassignedTo: 'viewer',
      members: 2,
      mappings: 1,
      apiKeys: 1,
      defaultRole: true,
    });
    expect(await roleRow(a.organization.id, 'ops')).toBeUndefined();
    expect(await rolesOf(alice)).toEqual({ roles: ['viewer'], mappedRoles: [] });
    expect(await rolesOf(bob)).toEqual({ roles: ['member', 'viewer'], mappedRoles: ['viewer'] });
    const [mapping] = await ctx.sql`select roles from group_role_mappings where organization_id = ${a.organization.id}`;
    expect(mapping!.roles).toEqual(['viewer']);
    const [key] = await ctx.sql`select roles from credentials where name = 'key-ops'`;
    expect(key!.roles).toEqual(['viewer']);
    const [org] = await ctx.sql`select default_role from organizations where id = ${a.organization.id}`;
    expect(org!.defaultRole).toBe('viewer');

    const [deleted] = await auditOf('role.deleted', 'ops');
    expect(deleted!.details).toMatchObject({ reassignedTo: 'viewer', members: 2, mappings: 1, apiKeys: 1 });
    const [changed] = await auditOf('member.role_changed', alice);
    expect(changed!.details).toMatchObject({
      from: ['ops'],
      to: ['viewer'],
      roleDeleted: 'ops',
      reassignedTo: 'viewer',
    });
    const announced = await ctx.sql`select type from outbox
      where organization_id = ${a.organization.id} and (type = 'mapping.updated' or payload->>'accountId' = ${alice})
      order by id desc limit 2`;
    expect(announced.map((e) => e.type).sort()).toEqual(['mapping.updated', 'member.role_changed']);
  });

  it('a caller limited by its permissions may reassign only to a role it holds', async () => {
    await createRole('temp', ['members:view']).expect(201);
    await member('carol@roles.test', ['temp']);
    const admin = await keyWith(['admin']);
    const refused = await request(app).delete('/api/roles/temp?reassignTo=owner').set(as(admin.secret)).expect(403);
    expect(refused.body.details).toEqual({ missing: ['billing:manage'] });
    expect(await roleRow(a.organization.id, 'temp')).toBeDefined();
    await request(app).delete('/api/roles/temp?reassignTo=member').set(as(admin.secret)).expect(200);
  });
});
