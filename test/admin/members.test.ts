import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor } from '../../src/core/actor.ts';
import { issueCredential, revokeCredential } from '../../src/core/credentials.ts';
import { inviteMembers } from '../../src/core/invitations.ts';
import { joinOrganization, suspendMember } from '../../src/core/memberships.ts';
import { createSession } from '../../src/core/sessions.ts';
import { createApp } from '../../src/http/app.ts';
import { SESSION_COOKIE } from '../../src/http/session-cookie.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

const actor = systemActor('scim');
let ctx: AppContext;
let app: Express;
let a: Awaited<ReturnType<typeof createTestOrganization>>;
let b: Awaited<ReturnType<typeof createTestOrganization>>;
const ids: string[] = [];

beforeAll(async () => {
  ctx = await createTestContext();
  app = createApp(ctx);
  a = await createTestOrganization(ctx, 'members-a');
  b = await createTestOrganization(ctx, 'members-b');
  for (let i = 0; i < 7; i++) {
    const acc = await ensureAccount(ctx.sql, { email: `person${i}@members.test` });
    await joinOrganization(
      ctx.sql,
      { organizationId: a.organization.id, accountId: acc.id, source: i % 2 ? 'admin' : 'sso' },
      actor,
    );
    ids.push(acc.id);
  }
  await suspendMember(ctx.sql, a.organization.id, ids[6]!, actor);
});
afterAll(async () => ctx.database.close());

const as = (key: string) => ({ authorization: `Bearer ${key}` });
const keyWith = async (roles: string[], expiresAt?: Date) =>
  (
    await issueCredential(
      ctx.sql,
      ctx.config.serverSecret,
      { organizationId: a.organization.id, kind: 'admin', name: roles.join('+'), roles, expiresAt },
      systemActor('cli'),
    )
  ).secret;
const session = async (accountId: string) =>
  `${SESSION_COOKIE}=${(await createSession(ctx.sql, ctx.config.serverSecret, { organizationId: a.organization.id, accountId, via: 'saml' })).secret}`;

describe('members', () => {
  it('list with status, roles and source; filter; page without gaps or repeats', async () => {
    const all = await request(app).get('/api/members?limit=200').set(as(a.adminKey)).expect(200);
    expect(all.body.items).toHaveLength(8);
    // Joining counts as activity: every member has a last activity, as an ISO date.
    const [joinedAt] =
      await ctx.sql`select last_active_at from memberships where organization_id = ${a.organization.id} and account_id = ${ids[0]!}`;
    expect(all.body.items.find((m: { accountId: string }) => m.accountId === ids[0])).toMatchObject({
      lastActiveAt: joinedAt!.lastActiveAt.toISOString(),
      invitation: null,
    });
    expect(all.body.items.find((m: { email: string }) => m.email === 'person6@members.test')).toMatchObject({
      status: 'suspended',
      source: 'sso',
    });
    expect(
      (await request(app).get('/api/members?status=suspended').set(as(a.adminKey)).expect(200)).body.items,
    ).toHaveLength(1);
    expect((await request(app).get('/api/members?role=owner').set(as(a.adminKey)).expect(200)).body.items).toEqual([
      expect.objectContaining({ email: 'owner@members-a.test', effectiveRoles: ['owner'] }),
    ]);
    expect(
      (await request(app).get('/api/members?email=PERSON3').set(as(a.adminKey)).expect(200)).body.items,
    ).toHaveLength(1);
    expect((await request(app).get('/api/members?email=%25').set(as(a.adminKey)).expect(200)).body.items).toHaveLength(
      0,
    );
    const seen: string[] = [];
    let after = '';
    for (;;) {
      const page = await request(app)
        .get(`/api/members?limit=3${after ? `&after=${after}` : ''}`)
        .set(as(a.adminKey))
        .expect(200);
      seen.push(...page.body.items.map((m: { accountId: string }) => m.accountId));
      if (!page.body.next) break;
      after = page.body.next;
    }
    expect(seen).toEqual(all.body.items.map((m: { accountId: string }) => m.accountId));
    await request(app).get('/api/members?limit=0').set(as(a.adminKey)).expect(400);
    // The other organization sees only its own owner.
    expect((await request(app).get('/api/members').set(as(b.adminKey)).expect(200)).body.items).toHaveLength(1);
  });

  it("change roles; refuse unknown roles and another organization's member", async () => {
    const res = await request(app)
      .put(`/api/members/${ids[0]}/roles`)
      .set(as(a.adminKey))
      .send({ roles: ['admin', 'billing'] })
      .expect(200);
    expect(res.body.roles).toEqual(['admin', 'billing']);
    expect(
      (
        await request(app)
          .put(`/api/members/${ids[0]}/roles`)
          .set(as(a.adminKey))
          .send({ roles: ['wizard'] })
          .expect(400)
      ).body.message,
    ).toMatch(/unknown role/);
    await request(app).put(`/api/members/${ids[0]}/roles`).set(as(a.adminKey)).send({ roles: [] }).expect(400);
    await request(app)
      .put(`/api/members/${ids[0]}/roles`)
      .set(as(b.adminKey))
      .send({ roles: ['viewer'] })
      .expect(404);
    await request(app)
      .put(`/api/members/not-a-uuid/roles`)
      .set(as(a.adminKey))
      .send({ roles: ['viewer'] })
      .expect(404);
  });

  it('the last owner can be neither demoted nor removed', async () => {
    const demote = await request(app)
      .put(`/api/members/${a.owner.id}/roles`)
      .set(as(a.adminKey))
      .send({ roles: ['member'] })
      .expect(409);
    expect(demote.body).toMatchObject({ error: 'rule_violation', message: expect.stringMatching(/last owner/) });
    await request(app).delete(`/api/members/${a.owner.id}`).set(as(a.adminKey)).expect(409);
  });

  it('remove one; remove many with a result per member', async () => {
    await request(app).delete(`/api/members/${ids[1]}`).set(as(b.adminKey)).expect(404);
    await request(app).delete(`/api/members/${ids[1]}`).set(as(a.adminKey)).expect(204);
    const bulk = await request(app)
      .post('/api/members/remove')
      .set(as(a.adminKey))
      .send({ accountIds: [ids[2], ids[3], a.owner.id, ids[1], 'junk'] })
      .expect(200);
    expect(bulk.body).toMatchObject({ removed: 2, failed: 3 });
    expect(bulk.body.results).toEqual([
      { accountId: ids[2], removed: true },
      { accountId: ids[3], removed: true },
      expect.objectContaining({ accountId: a.owner.id, removed: false, error: 'rule_violation' }),
      expect.objectContaining({ accountId: ids[1], removed: false, error: 'not_found' }),
      expect.objectContaining({ accountId: 'junk', removed: false, error: 'not_found' }),
    ]);
    expect(await ctx.sql`select 1 from accounts where id = ${ids[2]!}`).toHaveLength(1);
    await request(app)
      .post('/api/members/remove')
      .set(as(a.adminKey))
      .send({ accountIds: new Array(101).fill(ids[4]) })
      .expect(400);
  });

  it('nobody removes themselves; they leave; the last owner cannot leave', async () => {
    await request(app)
      .put(`/api/members/${ids[4]}/roles`)
      .set(as(a.adminKey))
      .send({ roles: ['admin'] })
      .expect(200);
    const cookie = await session(ids[4]!);
    const self = await request(app).delete(`/api/members/${ids[4]}`).set('cookie', cookie).expect(409);
    expect(self.body.message).toMatch(/cannot remove yourself/);
    await request(app).post('/api/leave').set('cookie', cookie).expect(204);
    // Leaving ended the membership, and with it the session.
    await request(app).get('/api/members').set('cookie', cookie).expect(401);
    await request(app)
      .post('/api/leave')
      .set('cookie', await session(a.owner.id))
      .expect(409);
    await request(app).post('/api/leave').set(as(a.adminKey)).expect(400);
  });
});

describe('members: permissions, keys and pending rows', () => {
  it('a viewer (key or session) cannot change roles: 403 naming the missing permission; nothing changes', async () => {
    const viewer = await keyWith(['viewer']);
    const res = await request(app)
      .put(`/api/members/${ids[5]}/roles`)
      .set(as(viewer))
      .send({ roles: ['viewer'] })
      .expect(403);
    expect(res.body).toEqual({
      error: 'forbidden',
      message: 'missing permission: members:manage',
      details: { missing: ['members:manage'] },
    });
    await request(app)
      .put(`/api/members/${ids[5]}/roles`)
      .set(as(a.adminKey))
      .send({ roles: ['viewer'] })
      .expect(200);
    const cookie = await session(ids[5]!);
    expect(
      (
        await request(app)
          .put(`/api/members/${ids[0]}/roles`)
          .set('cookie', cookie)
          .send({ roles: ['member'] })
          .expect(403)
      ).body.details,
    ).toEqual({ missing: ['members:manage'] });
    expect(
      (
        await ctx.sql`select roles from memberships where organization_id = ${a.organization.id} and account_id = ${ids[0]!}`
      )[0]!.roles,
    ).toEqual(['admin', 'billing']);
  });

  it('a revoked or expired admin key gets 401', async () => {
    const key = await keyWith(['owner']);
    await request(app).get('/api/members').set(as(key)).expect(200);
    const [row] =
      await ctx.sql`select id from credentials where organization_id = ${a.organization.id} and kind = 'admin' order by created_at desc limit 1`;
    await revokeCredential(ctx.sql, a.organization.id, row!.id, systemActor('cli'));
    const revoked = await request(app).get('/api/members').set(as(key)).expect(401);
    expect(revoked.body.error).toBe('unauthenticated');
    const expiring = await keyWith(['owner'], new Date(Date.now() + 60_000));
    await ctx.sql`update credentials set expires_at = now() - interval '1 second' where organization_id = ${a.organization.id} and name = 'owner' and revoked_at is null`;
    await request(app).get('/api/members').set(as(expiring)).expect(401);
  });

  it('an admin (key or session) cannot grant owner, change an owner, remove an owner or map a group to owner: 403 with details.missing', async () => {
    const adminKey = await keyWith(['admin']);
    const target = ids[5]!;
    const billingMember = ids[0]!; // admin + billing: beyond an admin key (no billing:manage)
    const refused = await request(app)
      .put(`/api/members/${target}/roles`)
      .set(as(adminKey))
      .send({ roles: ['owner'] })
      .expect(403);
    expect(refused.body).toMatchObject({ error: 'forbidden', details: { missing: ['billing:manage'] } });
    expect(refused.body.message).toMatch(
      /^missing permission: billing:manage \(needed to grant or take away the role\(s\) owner\)$/,
    );
    expect(
      (await request(app).delete(`/api/members/${a.owner.id}`).set(as(adminKey)).expect(403)).body.details,
    ).toEqual({ missing: ['billing:manage'] });
    const bulk = await request(app)
      .post('/api/members/remove')
      .set(as(adminKey))
      .send({ accountIds: [a.owner.id] })
      .expect(200);
    expect(bulk.body.results[0]).toMatchObject({ removed: false, error: 'forbidden' });
    await request(app)
      .put(`/api/members/${a.owner.id}/roles`)
      .set(as(adminKey))
      .send({ roles: ['owner', 'viewer'] })
      .expect(403);
    await request(app)
      .post('/api/group-mappings')
      .set(as(adminKey))
      .send({ groupName: 'Everyone', roles: ['owner'] })
      .expect(403);
    await request(app).patch('/api/organization').set(as(adminKey)).send({ defaultRole: 'owner' }).expect(403);
    // A signed-in admin cannot make itself owner either.
    await request(app)
      .put(`/api/members/${target}/roles`)
      .set(as(a.adminKey))
      .send({ roles: ['admin'] })
      .expect(200);
    const cookie = await session(target);
    const self = await request(app)
      .put(`/api/members/${target}/roles`)
      .set('cookie', cookie)
      .send({ roles: ['admin', 'owner'] })
      .expect(403);
    expect(self.body.details).toEqual({ missing: ['billing:manage'] });
    expect(
      (
        await ctx.sql`select roles from memberships where organization_id = ${a.organization.id} and account_id = ${target}`
      )[0]!.roles,
    ).toEqual(['admin']);
    expect(
      (
        await ctx.sql`select roles, status from memberships where organization_id = ${a.organization.id} and account_id = ${a.owner.id}`
      )[0],
    ).toEqual({ roles: ['owner'], status: 'active' });
    expect(await ctx.sql`select 1 from group_role_mappings where organization_id = ${a.organization.id}`).toHaveLength(
      0,
    );
    // Nor a member holding billing:manage; within its own permissions an admin works as before.
    await request(app)
      .put(`/api/members/${billingMember}/roles`)
      .set(as(adminKey))
      .send({ roles: ['admin', 'billing'] })
      .expect(403);
    await request(app)
      .put(`/api/members/${target}/roles`)
      .set(as(adminKey))
      .send({ roles: ['member'] })
      .expect(200);
  });

  it('pending rows carry their invitation id and expiry; other rows carry null', async () => {
    const invited = await inviteMembers(
      ctx.sql,
      ctx.config.serverSecret,
      a.organization.id,
      [{ email: 'pending1@members.test' }, { email: 'pending2@members.test' }],
      systemActor('admin'),
    );
    const res = await request(app).get('/api/members?status=pending').set(as(a.adminKey)).expect(200);
    expect(res.body.items).toHaveLength(2);
    for (const result of invited) {
      if (!result.invited) throw new Error(result.message);
      const row = res.body.items.find((m: { email: string }) => m.email === result.email);
      expect(row).toMatchObject({
        status: 'pending',
        invitation: {
          id: result.invitation.id,
          expiresAt: result.invitation.expiresAt.toISOString(),
          createdAt: result.invitation.createdAt.toISOString(),
        },
      });
    }
    const active = (await request(app).get('/api/members?status=active').set(as(a.adminKey)).expect(200)).body.items;
    expect(active.every((m: { invitation: unknown }) => m.invitation === null)).toBe(true);
  });
});
