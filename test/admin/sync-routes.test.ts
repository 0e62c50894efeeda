import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { systemActor } from '../../src/core/actor.ts';
import { issueCredential } from '../../src/core/credentials.ts';
import { createGroup } from '../../src/core/groups.ts';
import { createSession } from '../../src/core/sessions.ts';
import { createApp } from '../../src/app.ts';
import { SESSION_COOKIE } from '../../src/http/session-cookie.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

let ctx: AppContext;
let app: Express;
let a: Awaited<ReturnType<typeof createTestOrganization>>;
let b: Awaited<ReturnType<typeof createTestOrganization>>;
let viewerKey: string;

beforeAll(async () => {
  ctx = await createTestContext();
  app = createApp(ctx);
  a = await createTestOrganization(ctx, 'org-a');
  b = await createTestOrganization(ctx, 'org-b');
  viewerKey = (
    await issueCredential(
      ctx.sql,
      ctx.config.serverSecret,
      { organizationId: a.organization.id, kind: 'admin', name: 'ro', roles: ['viewer'] },
      systemActor('cli'),
    )
  ).secret;
});
afterAll(async () => ctx.database.close());

const as = (key: string) => ({ authorization: `Bearer ${key}` });

describe('admin API authentication', () => {
  it('401 without a key, with a wrong key, a SCIM token or a malformed header', async () => {
    for (const headers of [{}, as('oskey_wrong'), as(a.scimToken), { authorization: 'Basic abc' }]) {
      const res = await request(app).get('/api/webhooks').set(headers).expect(401);
      expect(res.body.error).toBe('unauthenticated');
    }
  });

  it('403 naming the missing permission', async () => {
    const res = await request(app)
      .post('/api/webhooks')
      .set(as(viewerKey))
      .send({ url: 'https://hooks.example.com/x' })
      .expect(403);
    expect(res.body).toMatchObject({ error: 'forbidden', details: { missing: ['org:manage'] } });
    expect(await ctx.sql`select 1 from webhook_endpoints`).toHaveLength(0);
  });

  it("accepts a signed-in member's session cookie", async () => {
    const { secret } = await createSession(ctx.sql, ctx.config.serverSecret, {
      organizationId: a.organization.id,
      accountId: a.owner.id,
      via: 'saml',
    });
    await request(app).get('/api/group-mappings').set('cookie', `${SESSION_COOKIE}=${secret}`).expect(200);
  });
});

describe('webhook endpoints', () => {
  it('create (secret shown once), list, refuse bad input, delete', async () => {
    const created = await request(app)
      .post('/api/webhooks')
      .set(as(a.adminKey))
      .send({ url: 'https://hooks.example.com/orgsync', events: ['member.joined'] })
      .expect(201);
    expect(created.body.secret).toMatch(/^oswhsec_/);
    const list = await request(app).get('/api/webhooks').set(as(a.adminKey)).expect(200);
    expect(list.body.items).toEqual([
      expect.objectContaining({
        id: created.body.id,
        url: 'https://hooks.example.com/orgsync',
        events: ['member.joined'],
      }),
    ]);
    expect(JSON.stringify(list.body)).not.toContain(created.body.secret);

    expect(
      (await request(app).post('/api/webhooks').set(as(a.adminKey)).send({ url: 'ftp://x' }).expect(400)).body.message,
    ).toMatch(/http/);
    expect(
      (await request(app).post('/api/webhooks').set(as(a.adminKey)).send({ nope: 1 }).expect(400)).body.error,
    ).toBe('invalid');
    await request(app)
      .post('/api/webhooks')
      .set(as(a.adminKey))
      .set('content-type', 'application/json')
      .send('{"url":')
      .expect(400);

    // Another organization's key sees none of it and cannot delete it.
    expect((await request(app).get('/api/webhooks').set(as(b.adminKey)).expect(200)).body.items).toEqual([]);
    await request(app).delete(`/api/webhooks/${created.body.id}`).set(as(b.adminKey)).expect(404);
    await request(app).delete(`/api/webhooks/${created.body.id}`).set(as(a.adminKey)).expect(204);
    await request(app).delete(`/api/webhooks/${created.body.id}`).set(as(a.adminKey)).expect(404);
  });
});

describe('dead letters', () => {
  it('are listed per organization and can be retried', async () => {
    const [event] =
      await ctx.sql`insert into outbox (organization_id, type, payload) values (${a.organization.id}, 'member.joined', '{}') returning id`;
    const [dead] =
      await ctx.sql`insert into deliveries (organization_id, event_id, kind, target, status, attempts, last_error)
      values (${a.organization.id}, ${event!.id}, 'webhook', ${crypto.randomUUID()}, 'dead', 10, 'HTTP 500') returning id`;
    const list = await request(app).get('/api/deliveries?status=dead').set(as(a.adminKey)).expect(200);
    expect(list.body.items).toEqual([
      expect.objectContaining({ id: dead!.id, eventType: 'member.joined', lastError: 'HTTP 500', attempts: 10 }),
    ]);
    expect((await request(app).get('/api/deliveries?status=dead').set(as(b.adminKey)).expect(200)).body.items).toEqual(
      [],
    );
    expect(
      (await request(app).post('/api/deliveries/retry').set(as(b.adminKey)).send({}).expect(200)).body.retried,
    ).toBe(0);
    await request(app).get('/api/deliveries?status=bogus').set(as(a.adminKey)).expect(400);
    expect(
      (
        await request(app)
          .post('/api/deliveries/retry')
          .set(as(a.adminKey))
          .send({ ids: [dead!.id] })
          .expect(200)
      ).body.retried,
    ).toBe(1);
    const [row] =
      await ctx.sql`select status, attempts from deliveries where organization_id = ${a.organization.id} and id = ${dead!.id}`;
    expect(row).toEqual({ status: 'pending', attempts: 0 });
  });
});

describe('group mappings', () => {
  it("create by group id or name, list, delete; another organization's group is not found", async () => {
    const group = await createGroup(
      ctx.sql,
      { organizationId: a.organization.id, source: 'scim', displayName: 'Admins' },
      systemActor('scim'),
    );
    const byId = await request(app)
      .post('/api/group-mappings')
      .set(as(a.adminKey))
      .send({ groupId: group.id, roles: ['admin'] })
      .expect(201);
    await request(app)
      .post('/api/group-mappings')
      .set(as(a.adminKey))
      .send({ groupName: 'Finance', roles: ['billing'] })
      .expect(201);
    expect((await request(app).get('/api/group-mappings').set(as(viewerKey)).expect(200)).body.items).toHaveLength(2);
    await request(app)
      .post('/api/group-mappings')
      .set(as(viewerKey))
      .send({ groupName: 'x', roles: ['admin'] })
      .expect(403);
    expect(
      (
        await request(app)
          .post('/api/group-mappings')
          .set(as(b.adminKey))
          .send({ groupId: group.id, roles: ['admin'] })
          .expect(404)
      ).body.error,
    ).toBe('not_found');
    expect(
      (
        await request(app)
          .post('/api/group-mappings')
          .set(as(a.adminKey))
          .send({ groupName: 'x', roles: ['wizard'] })
          .expect(400)
      ).body.message,
    ).toMatch(/unknown role/);
    expect(
      (
        await request(app)
          .patch(`/api/group-mappings/${byId.body.id}`)
          .set(as(a.adminKey))
          .send({ roles: ['viewer'] })
          .expect(200)
      ).body.roles,
    ).toEqual(['viewer']);
    await request(app)
      .patch(`/api/group-mappings/${byId.body.id}`)
      .set(as(b.adminKey))
      .send({ roles: ['viewer'] })
      .expect(404);
    await request(app).patch(`/api/group-mappings/${byId.body.id}`).set(as(a.adminKey)).send({ roles: [] }).expect(400);
    await request(app).delete(`/api/group-mappings/${byId.body.id}`).set(as(b.adminKey)).expect(404);
    await request(app).delete(`/api/group-mappings/${byId.body.id}`).set(as(a.adminKey)).expect(204);
    expect((await request(app).get('/api/group-mappings').set(as(a.adminKey)).expect(200)).body.items).toHaveLength(1);
  });
});
