import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { createApp } from '../../src/app.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

let ctx: AppContext;
let app: Express;
let a: Awaited<ReturnType<typeof createTestOrganization>>;
let b: Awaited<ReturnType<typeof createTestOrganization>>;

beforeAll(async () => {
  ctx = await createTestContext();
  app = createApp(ctx);
  a = await createTestOrganization(ctx, 'settings-a');
  b = await createTestOrganization(ctx, 'settings-b');
});
afterAll(async () => ctx.database.close());

const as = (key: string) => ({ authorization: `Bearer ${key}` });

describe('organization settings and roles', () => {
  it("shows the caller's organization and permissions", async () => {
    const res = await request(app).get('/api/organization').set(as(a.adminKey)).expect(200);
    expect(res.body).toMatchObject({ slug: 'settings-a', inviteTtlHours: 72, you: { actor: 'setup' } });
    expect(res.body.you.permissions).toContain('org:manage');
  });

  it('a custom role becomes usable as default role; invitations then expire after the configured time', async () => {
    await request(app)
      .post('/api/roles')
      .set(as(a.adminKey))
      .send({ key: 'support', name: 'Support', permissions: ['members:view'] })
      .expect(201);
    await request(app)
      .post('/api/roles')
      .set(as(a.adminKey))
      .send({ key: 'support', name: 'Again', permissions: [] })
      .expect(409);
    await request(app)
      .post('/api/roles')
      .set(as(a.adminKey))
      .send({ key: 'x', name: 'X', permissions: ['root'] })
      .expect(400);
    await request(app)
      .post('/api/roles')
      .set(as(a.adminKey))
      .send({ key: 'owner', name: 'X', permissions: [] })
      .expect(409);
    expect(
      (await request(app).get('/api/roles').set(as(a.adminKey)).expect(200)).body.items.map(
        (r: { key: string }) => r.key,
      ),
    ).toContain('support');
    expect(
      (await request(app).get('/api/roles').set(as(b.adminKey)).expect(200)).body.items.map(
        (r: { key: string }) => r.key,
      ),
    ).not.toContain('support');

    await request(app)
      .patch('/api/organization')
      .set(as(a.adminKey))
      .send({ defaultRole: 'support', inviteTtlHours: 24 })
      .expect(200);
    await request(app).patch('/api/organization').set(as(b.adminKey)).send({ defaultRole: 'support' }).expect(400);
    await request(app).patch('/api/organization').set(as(a.adminKey)).send({ inviteTtlHours: 0 }).expect(400);
    await request(app).patch('/api/organization').set(as(a.adminKey)).send({ slug: 'steal' }).expect(400);
    const inv = (
      await request(app).post('/api/invitations').set(as(a.adminKey)).send({ emails: 'new@settings.test' }).expect(201)
    ).body.results[0].invitation;
    const hours = (new Date(inv.expiresAt).getTime() - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(23.9);
    expect(hours).toBeLessThanOrEqual(24);
    const [m] = await ctx.sql`select roles from memberships where account_id = ${inv.accountId}`;
    expect(m!.roles).toEqual(['support']);
  });
});

describe('single-organization policy', () => {
  it('is off by default: the owner of B can be invited to A (on: test/admin/single-organization.test.ts)', async () => {
    const open = await request(app)
      .post('/api/invitations')
      .set(as(a.adminKey))
      .send({ emails: 'owner@settings-b.test' })
      .expect(201);
    expect(open.body.invited).toBe(1);
  });
});

describe('verified domains', () => {
  it('add (with a TXT token), verify, one organization per verified domain, remove', async () => {
    const added = await request(app)
      .post('/api/domains')
      .set(as(a.adminKey))
      .send({ domain: 'Acme.Example.com.' })
      .expect(201);
    expect(added.body).toMatchObject({
      domain: 'acme.example.com',
      verifiedAt: null,
      verificationToken: expect.stringMatching(/^orgsync-verification=[0-9a-f]{32}$/),
    });
    await request(app).post('/api/domains').set(as(a.adminKey)).send({ domain: 'acme.example.com' }).expect(409);
    await request(app).post('/api/domains').set(as(a.adminKey)).send({ domain: 'not a domain' }).expect(400);
    await request(app).post('/api/domains').set(as(b.adminKey)).send({ domain: 'acme.example.com' }).expect(201);
    expect(
      (await request(app).post('/api/domains/acme.example.com/verify').set(as(a.adminKey)).expect(200)).body.verifiedAt,
    ).not.toBeNull();
    expect(
      (await request(app).post('/api/domains/acme.example.com/verify').set(as(b.adminKey)).expect(409)).body.message,
    ).toMatch(/another organization/);
    await request(app).post('/api/domains/nope.example.com/verify').set(as(a.adminKey)).expect(404);
    const viewer = await request(app).get('/api/domains').set(as(b.adminKey)).expect(200);
    expect(viewer.body.items).toEqual([expect.objectContaining({ domain: 'acme.example.com', verifiedAt: null })]);
    await request(app).delete('/api/domains/acme.example.com').set(as(a.adminKey)).expect(204);
    await request(app).post('/api/domains/acme.example.com/verify').set(as(b.adminKey)).expect(200);
  });
});
