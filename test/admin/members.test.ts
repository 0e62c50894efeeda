import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor } from '../../src/core/actor.ts';
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
    await joinOrganization(ctx.sql, { organizationId: a.organization.id, accountId: acc.id, source: i % 2 ? 'scim' : 'sso' }, actor);
    ids.push(acc.id);
  }
  await suspendMember(ctx.sql, a.organization.id, ids[6]!, actor);
});
afterAll(async () => ctx.database.close());

const as = (key: string) => ({ authorization: `Bearer ${key}` });
const session = async (accountId: string) =>
  `${SESSION_COOKIE}=${(await createSession(ctx.sql, ctx.config.serverSecret, { organizationId: a.organization.id, accountId, via: 'saml' })).secret}`;

describe('members', () => {
  it('list with status, roles and source; filter; page without gaps or repeats', async () => {
    const all = await request(app).get('/api/members?limit=200').set(as(a.adminKey)).expect(200);
    expect(all.body.items).toHaveLength(8);
    expect(all.body.items.find((m: { email: string }) => m.email === 'person6@members.test')).toMatchObject({ status: 'suspended', source: 'sso' });
    expect((await request(app).get('/api/members?status=suspended').set(as(a.adminKey)).expect(200)).body.items).toHaveLength(1);
    expect((await request(app).get('/api/members?role=owner').set(as(a.adminKey)).expect(200)).body.items).toEqual([
      expect.objectContaining({ email: 'owner@members-a.test', effectiveRoles: ['owner'] }),
    ]);
    expect((await request(app).get('/api/members?email=PERSON3').set(as(a.adminKey)).expect(200)).body.items).toHaveLength(1);
    expect((await request(app).get('/api/members?email=%25').set(as(a.adminKey)).expect(200)).body.items).toHaveLength(0);
    const seen: string[] = [];
    let after = '';
    for (;;) {
      const page = await request(app).get(`/api/members?limit=3${after ? `&after=${after}` : ''}`).set(as(a.adminKey)).expect(200);
      seen.push(...page.body.items.map((m: { accountId: string }) => m.accountId));
      if (!page.body.next) break;
      after = page.body.next;
    }
    expect(seen).toEqual(all.body.items.map((m: { accountId: string }) => m.accountId));
    await request(app).get('/api/members?limit=0').set(as(a.adminKey)).expect(400);
    // The other organization sees only its own owner.
    expect((await request(app).get('/api/members').set(as(b.adminKey)).expect(200)).body.items).toHaveLength(1);
  });

  it('change roles; refuse unknown roles and another organization\'s member', async () => {
    const res = await request(app).put(`/api/members/${ids[0]}/roles`).set(as(a.adminKey)).send({ roles: ['admin', 'billing'] }).expect(200);
    expect(res.body.roles).toEqual(['admin', 'billing']);
    expect((await request(app).put(`/api/members/${ids[0]}/roles`).set(as(a.adminKey)).send({ roles: ['wizard'] }).expect(400)).body.message).toMatch(/unknown role/);
    await request(app).put(`/api/members/${ids[0]}/roles`).set(as(a.adminKey)).send({ roles: [] }).expect(400);
    await request(app).put(`/api/members/${ids[0]}/roles`).set(as(b.adminKey)).send({ roles: ['viewer'] }).expect(404);
    await request(app).put(`/api/members/not-a-uuid/roles`).set(as(a.adminKey)).send({ roles: ['viewer'] }).expect(404);
  });

  it('the last owner can be neither demoted nor removed', async () => {
    const demote = await request(app).put(`/api/members/${a.owner.id}/roles`).set(as(a.adminKey)).send({ roles: ['member'] }).expect(409);
    expect(demote.body).toMatchObject({ error: 'rule_violation', message: expect.stringMatching(/last owner/) });
    await request(app).delete(`/api/members/${a.owner.id}`).set(as(a.adminKey)).expect(409);
  });

  it('remove one; remove many with a result per member', async () => {
    await request(app).delete(`/api/members/${ids[1]}`).set(as(b.adminKey)).expect(404);
    await request(app).delete(`/api/members/${ids[1]}`).set(as(a.adminKey)).expect(204);
    const bulk = await request(app).post('/api/members/remove').set(as(a.adminKey)).send({ accountIds: [ids[2], ids[3], a.owner.id, ids[1], 'junk'] }).expect(200);
    expect(bulk.body).toMatchObject({ removed: 2, failed: 3 });
    expect(bulk.body.results).toEqual([
      { accountId: ids[2], removed: true },
      { accountId: ids[3], removed: true },
      expect.objectContaining({ accountId: a.owner.id, removed: false, error: 'rule_violation' }),
      expect.objectContaining({ accountId: ids[1], removed: false, error: 'not_found' }),
      expect.objectContaining({ accountId: 'junk', removed: false, error: 'not_found' }),
    ]);
    expect(await ctx.sql`select 1 from accounts where id = ${ids[2]!}`).toHaveLength(1);
    await request(app).post('/api/members/remove').set(as(a.adminKey)).send({ accountIds: new Array(101).fill(ids[4]) }).expect(400);
  });

  it('nobody removes themselves; they leave; the last owner cannot leave', async () => {
    await request(app).put(`/api/members/${ids[4]}/roles`).set(as(a.adminKey)).send({ roles: ['admin'] }).expect(200);
    const cookie = await session(ids[4]!);
    const self = await request(app).delete(`/api/members/${ids[4]}`).set('cookie', cookie).expect(409);
    expect(self.body.message).toMatch(/cannot remove yourself/);
    await request(app).post('/api/leave').set('cookie', cookie).expect(204);
    // Leaving ended the membership, and with it the session.
    await request(app).get('/api/members').set('cookie', cookie).expect(401);
    await request(app).post('/api/leave').set('cookie', await session(a.owner.id)).expect(409);
    await request(app).post('/api/leave').set(as(a.adminKey)).expect(400);
  });
});
