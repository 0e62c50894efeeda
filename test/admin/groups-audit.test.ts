import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor } from '../../src/core/actor.ts';
import { createGroup } from '../../src/core/groups.ts';
import { joinOrganization } from '../../src/core/memberships.ts';
import { createApp } from '../../src/app.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

let ctx: AppContext;
let app: Express;
let a: Awaited<ReturnType<typeof createTestOrganization>>;
let b: Awaited<ReturnType<typeof createTestOrganization>>;
let memberId: string;

beforeAll(async () => {
  ctx = await createTestContext();
  app = createApp(ctx);
  a = await createTestOrganization(ctx, 'groups-a');
  b = await createTestOrganization(ctx, 'groups-b');
  const acc = await ensureAccount(ctx.sql, { email: 'member@groups.test' });
  await joinOrganization(
    ctx.sql,
    { organizationId: a.organization.id, accountId: acc.id, source: 'admin' },
    systemActor('admin'),
  );
  memberId = acc.id;
});
afterAll(async () => ctx.database.close());

const as = (key: string) => ({ authorization: `Bearer ${key}` });

describe('local groups', () => {
  it('create, rename, add and remove members (only people in the organization), delete', async () => {
    const g = (await request(app).post('/api/groups').set(as(a.adminKey)).send({ displayName: 'Design' }).expect(201))
      .body;
    await request(app).post('/api/groups').set(as(a.adminKey)).send({ displayName: 'design' }).expect(409);
    await request(app)
      .patch(`/api/groups/${g.id}`)
      .set(as(a.adminKey))
      .send({ displayName: 'Product Design' })
      .expect(200);
    await request(app)
      .post(`/api/groups/${g.id}/members`)
      .set(as(a.adminKey))
      .send({ add: [memberId] })
      .expect(200);
    const stranger = await ensureAccount(ctx.sql, { email: 'stranger@groups.test' });
    expect(
      (
        await request(app)
          .post(`/api/groups/${g.id}/members`)
          .set(as(a.adminKey))
          .send({ add: [stranger.id] })
          .expect(400)
      ).body.message,
    ).toMatch(/not members/);
    expect((await request(app).get(`/api/groups/${g.id}/members`).set(as(a.adminKey)).expect(200)).body.items).toEqual([
      { accountId: memberId },
    ]);
    await request(app).get(`/api/groups/${g.id}/members?after=junk`).set(as(a.adminKey)).expect(400);
    const list = (await request(app).get('/api/groups').set(as(a.adminKey)).expect(200)).body.items;
    expect(list).toEqual([expect.objectContaining({ displayName: 'Product Design', memberCount: 1, source: 'local' })]);
    // The other organization can neither see nor touch it.
    expect((await request(app).get('/api/groups').set(as(b.adminKey)).expect(200)).body.items).toEqual([]);
    await request(app)
      .post(`/api/groups/${g.id}/members`)
      .set(as(b.adminKey))
      .send({ remove: [memberId] })
      .expect(404);
    await request(app).delete(`/api/groups/${g.id}`).set(as(b.adminKey)).expect(404);
    await request(app)
      .post(`/api/groups/${g.id}/members`)
      .set(as(a.adminKey))
      .send({ remove: [memberId] })
      .expect(200);
    await request(app).delete(`/api/groups/${g.id}`).set(as(a.adminKey)).expect(204);
  });

  it('IdP groups are read-only through the admin API', async () => {
    const scim = await createGroup(
      ctx.sql,
      { organizationId: a.organization.id, source: 'scim', displayName: 'From Okta' },
      systemActor('scim'),
    );
    await request(app).patch(`/api/groups/${scim.id}`).set(as(a.adminKey)).send({ displayName: 'x' }).expect(404);
    await request(app).delete(`/api/groups/${scim.id}`).set(as(a.adminKey)).expect(404);
    expect((await request(app).get('/api/groups?source=scim').set(as(a.adminKey)).expect(200)).body.items).toHaveLength(
      1,
    );
  });
});

describe('audit log', () => {
  it("lists the organization's entries newest first, filtered by action, actor and target, paged", async () => {
    const all = (await request(app).get('/api/audit?limit=200').set(as(a.adminKey)).expect(200)).body.items;
    expect(all.length).toBeGreaterThan(5);
    expect(Number(all[0].id)).toBeGreaterThan(Number(all[all.length - 1].id));
    const created = (await request(app).get('/api/audit?action=group').set(as(a.adminKey)).expect(200)).body.items;
    expect(created.every((e: { action: string }) => e.action.startsWith('group.'))).toBe(true);
    const bySetup = (await request(app).get('/api/audit?actor=setup').set(as(a.adminKey)).expect(200)).body.items;
    expect(bySetup.length).toBeGreaterThan(0);
    expect(bySetup.every((e: { actorName: string }) => e.actorName === 'setup')).toBe(true);
    const aboutMember = (await request(app).get(`/api/audit?target=${memberId}`).set(as(a.adminKey)).expect(200)).body
      .items;
    expect(aboutMember.map((e: { action: string }) => e.action)).toContain('member.joined');
    const page = (await request(app).get('/api/audit?limit=2').set(as(a.adminKey)).expect(200)).body;
    const next = (await request(app).get(`/api/audit?limit=2&before=${page.next}`).set(as(a.adminKey)).expect(200))
      .body;
    expect(next.items[0].id).toBe(all[2].id);
    expect(
      (await request(app).get('/api/audit').set(as(b.adminKey)).expect(200)).body.items.some(
        (e: { targetId: string }) => e.targetId === memberId,
      ),
    ).toBe(false);
    await request(app).get('/api/audit?since=notadate').set(as(a.adminKey)).expect(400);
  });

  it('since (inclusive) and until (exclusive) filter by real timestamps', async () => {
    await ctx.sql`update audit_log set at = '2024-01-10T12:00:00Z' where organization_id = ${a.organization.id} and action = 'organization.created'`;
    await ctx.sql`update audit_log set at = '2024-03-01T00:00:00Z' where organization_id = ${a.organization.id} and action = 'member.joined' and target_id = ${memberId}`;
    const between = async (query: string) =>
      (await request(app).get(`/api/audit?${query}`).set(as(a.adminKey)).expect(200)).body.items.map(
        (e: { action: string }) => e.action,
      );
    expect(await between('since=2024-01-01&until=2024-02-01')).toEqual(['organization.created']);
    expect(await between('since=2024-01-10T12:00:00Z&until=2024-03-01T00:00:00Z')).toEqual(['organization.created']);
    expect(await between('since=2024-01-10T12:00:00.001Z&until=2024-03-01T00:00:00.001Z')).toEqual(['member.joined']);
    expect(await between('until=2024-01-10T12:00:00Z')).toEqual([]);
    const recent = await between(`since=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}`);
    expect(recent).not.toContain('organization.created');
    expect(recent).toContain('group.created');
  });
});
