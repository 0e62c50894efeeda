import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor } from '../../src/core/actor.ts';
import { changeGroupMembers, createGroup } from '../../src/core/groups.ts';
import { joinOrganization } from '../../src/core/memberships.ts';
import { createApp } from '../../src/app.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

let ctx: AppContext;
let app: Express;
let a: Awaited<ReturnType<typeof createTestOrganization>>;
let engineeringScim: string;
const actor = systemActor('system', 'test');
const as = (key: string) => ({ authorization: `Bearer ${key}` });

/** Org a: SCIM group "Engineering" (3 members), SAML group "engineering" (2, one shared), local "Sales" (1). */
beforeAll(async () => {
  ctx = await createTestContext();
  app = createApp(ctx);
  a = await createTestOrganization(ctx, 'org-a');
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const account = await ensureAccount(ctx.sql, { email: `p${i}@org-a.test` });
    await joinOrganization(
      ctx.sql,
      { organizationId: a.organization.id, accountId: account.id, source: 'scim' },
      actor,
    );
    ids.push(account.id);
  }
  const scim = await createGroup(
    ctx.sql,
    { organizationId: a.organization.id, source: 'scim', displayName: 'Engineering' },
    actor,
  );
  const saml = await createGroup(
    ctx.sql,
    { organizationId: a.organization.id, source: 'saml', displayName: 'engineering' },
    actor,
  );
  const sales = await createGroup(
    ctx.sql,
    { organizationId: a.organization.id, source: 'local', displayName: 'Sales' },
    actor,
  );
  await changeGroupMembers(ctx.sql, a.organization.id, scim.id, { add: ids.slice(0, 3) }, actor);
  await changeGroupMembers(ctx.sql, a.organization.id, saml.id, { add: ids.slice(2, 4) }, actor);
  await changeGroupMembers(ctx.sql, a.organization.id, sales.id, { add: ids.slice(4) }, actor);
  engineeringScim = scim.id;
});
afterAll(async () => ctx.database.close());

describe('GET /api/group-mappings/preview', () => {
  it('counts the members of one group by id', async () => {
    const res = await request(app)
      .get('/api/group-mappings/preview')
      .query({ groupId: engineeringScim })
      .set(as(a.adminKey))
      .expect(200);
    expect(res.body).toEqual({ groupId: engineeringScim, groupName: null, affectedMembers: 3 });
  });

  it('counts every member of the groups with a name, case-insensitively and once each', async () => {
    const res = await request(app)
      .get('/api/group-mappings/preview')
      .query({ groupName: ' ENGINEERING ' })
      .set(as(a.adminKey))
      .expect(200);
    expect(res.body).toEqual({ groupId: null, groupName: 'ENGINEERING', affectedMembers: 4 });
    const none = await request(app)
      .get('/api/group-mappings/preview')
      .query({ groupName: 'Nobody here' })
      .set(as(a.adminKey))
      .expect(200);
    expect(none.body.affectedMembers).toBe(0);
  });

  it("refuses neither or both, an unknown group and another organization's group", async () => {
    for (const query of [{}, { groupId: engineeringScim, groupName: 'Engineering' }, { groupName: '' }]) {
      const res = await request(app).get('/api/group-mappings/preview').query(query).set(as(a.adminKey)).expect(400);
      expect(res.body.error).toBe('invalid');
    }
    await request(app)
      .get('/api/group-mappings/preview')
      .query({ groupId: 'not-a-uuid' })
      .set(as(a.adminKey))
      .expect(404);
    const b = await createTestOrganization(ctx, 'org-b');
    const res = await request(app)
      .get('/api/group-mappings/preview')
      .query({ groupId: engineeringScim })
      .set(as(b.adminKey))
      .expect(404);
    expect(res.body.error).toBe('not_found');
  });

  it('needs authentication', async () => {
    await request(app).get('/api/group-mappings/preview').query({ groupName: 'x' }).expect(401);
  });
});

describe('GET /api/members?group=', () => {
  it("lists a group's members only, with their emails and roles, paged", async () => {
    const res = await request(app)
      .get('/api/members')
      .query({ group: engineeringScim })
      .set(as(a.adminKey))
      .expect(200);
    expect(res.body.items.map((m: { email: string }) => m.email).sort()).toEqual([
      'p0@org-a.test',
      'p1@org-a.test',
      'p2@org-a.test',
    ]);
    expect(res.body.items[0]).toMatchObject({ status: 'active', roles: ['member'] });
    const first = await request(app)
      .get('/api/members')
      .query({ group: engineeringScim, limit: 2 })
      .set(as(a.adminKey))
      .expect(200);
    const rest = await request(app)
      .get('/api/members')
      .query({ group: engineeringScim, limit: 2, after: first.body.next })
      .set(as(a.adminKey))
      .expect(200);
    expect([...first.body.items, ...rest.body.items].map((m: { email: string }) => m.email).sort()).toEqual([
      'p0@org-a.test',
      'p1@org-a.test',
      'p2@org-a.test',
    ]);
    expect(rest.body.next).toBeNull();
  });

  it("refuses a group that is not an id, and finds nobody in another organization's group", async () => {
    const bad = await request(app).get('/api/members').query({ group: 'Engineering' }).set(as(a.adminKey)).expect(400);
    expect(bad.body.message).toMatch(/^group:/);
    const b = await createTestOrganization(ctx, 'org-c');
    const other = await request(app)
      .get('/api/members')
      .query({ group: engineeringScim })
      .set(as(b.adminKey))
      .expect(200);
    expect(other.body.items).toEqual([]);
  });
});
