import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { createApp } from '../../src/app.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor } from '../../src/core/actor.ts';
import { issueCredential } from '../../src/core/credentials.ts';
import { joinOrganization } from '../../src/core/memberships.ts';
import { createSession } from '../../src/core/sessions.ts';
import { SESSION_COOKIE } from '../../src/http/session-cookie.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

let ctx: AppContext;
let app: Express;
let a: Awaited<ReturnType<typeof createTestOrganization>>;
let b: Awaited<ReturnType<typeof createTestOrganization>>;
const actor = systemActor('system', 'test');

beforeAll(async () => {
  ctx = await createTestContext();
  app = createApp(ctx);
  a = await createTestOrganization(ctx, 'keys-a');
  b = await createTestOrganization(ctx, 'keys-b');
});
afterAll(async () => ctx.database.close());

const as = (key: string) => ({ authorization: `Bearer ${key}` });
const issue = async (roles: string[]) =>
  (
    await issueCredential(
      ctx.sql,
      ctx.config.serverSecret,
      { organizationId: a.organization.id, kind: 'admin', name: `with-${roles.join('-')}`, roles },
      actor,
    )
  ).secret;

describe('admin API keys', () => {
  it('creates a key (the secret answered once) that then works; lists it without secret, with its creator', async () => {
    const made = await request(app)
      .post('/api/api-keys')
      .set(as(a.adminKey))
      .send({ name: ' deploy ', roles: ['admin'], expiresInDays: 30 })
      .expect(201);
    expect(made.body.secret).toMatch(/^oskey_/);
    expect(made.body.key).toMatchObject({
      name: 'deploy',
      roles: ['admin'],
      createdBy: { type: 'admin_key', name: 'setup' },
      lastUsedAt: null,
      revokedAt: null,
      current: false,
    });
    const me = await request(app).get('/api/organization').set(as(made.body.secret)).expect(200);
    expect(me.body.you.actor).toBe('deploy');

    const list = await request(app).get('/api/api-keys').set(as(a.adminKey)).expect(200);
    expect(JSON.stringify(list.body)).not.toContain(made.body.secret);
    const byName = Object.fromEntries(list.body.items.map((k: { name: string }) => [k.name, k]));
    expect(byName.setup).toMatchObject({ createdBy: { type: 'system', name: 'test' }, current: true });
    expect(byName.deploy).toMatchObject({
      current: false,
      lastUsedAt: expect.any(String),
      secretHint: expect.any(String),
    });
    const [audit] = await ctx.sql`select actor_name, details from audit_log
      where organization_id = ${a.organization.id} and action = 'admin_credential.issued' and target_id = ${made.body.key.id}`;
    expect(audit).toMatchObject({ actorName: 'setup', details: { name: 'deploy' } });
    // Another organization sees none of them.
    const other = await request(app).get('/api/api-keys').set(as(b.adminKey)).expect(200);
    expect(other.body.items.map((k: { name: string }) => k.name)).toEqual(['setup']);
  });

  it('a signed-in member with org:manage creates keys too, recorded as made by them', async () => {
    const person = await ensureAccount(ctx.sql, { email: 'it@keys-a.test' });
    await joinOrganization(
      ctx.sql,
      { organizationId: a.organization.id, accountId: person.id, source: 'admin', roles: ['admin'] },
      actor,
    );
    const { secret } = await createSession(ctx.sql, ctx.config.serverSecret, {
      organizationId: a.organization.id,
      accountId: person.id,
      via: 'saml',
    });
    const made = await request(app)
      .post('/api/api-keys')
      .set('cookie', `${SESSION_COOKIE}=${secret}`)
      .set('x-orgsync-csrf', '1')
      .send({ name: 'ci', roles: ['viewer'] })
      .expect(201);
    expect(made.body.key.createdBy).toEqual({ type: 'account', name: 'it@keys-a.test' });
  });

  it('a key cannot make a key with more permissions than it has', async () => {
    const admin = await issue(['admin']);
    const refused = await request(app)
      .post('/api/api-keys')
      .set(as(admin))
      .send({ name: 'escalate', roles: ['owner'] })
      .expect(403);
    expect(refused.body.details).toEqual({ missing: ['billing:manage'] });
    const mixed = await request(app)
      .post('/api/api-keys')
      .set(as(admin))
      .send({ name: 'escalate', roles: ['member', 'billing'] })
      .expect(403);
    expect(mixed.body.details).toEqual({ missing: ['billing:manage'] });
    // Without org:manage no key at all, not even a weaker one.
    const viewer = await issue(['viewer']);
    await request(app)
      .post('/api/api-keys')
      .set(as(viewer))
      .send({ name: 'x', roles: ['viewer'] })
      .expect(403);
    await request(app).get('/api/api-keys').set(as(viewer)).expect(403);
    const [row] = await ctx.sql`select count(*)::int as n from credentials where name in ('escalate', 'x')`;
    expect(row!.n).toBe(0);
    await request(app)
      .post('/api/api-keys')
      .set(as(admin))
      .send({ name: 'weaker', roles: ['viewer'] })
      .expect(201);
  });

  it('refuses bad input next to each field', async () => {
    const res = await request(app)
      .post('/api/api-keys')
      .set(as(a.adminKey))
      .send({ name: '', roles: [], expiresInDays: 0 })
      .expect(400);
    expect(res.body.details.issues.map((i: { path: string }) => i.path).sort()).toEqual([
      'expiresInDays',
      'name',
      'roles',
    ]);
    await request(app)
      .post('/api/api-keys')
      .set(as(a.adminKey))
      .send({ name: 'x', roles: ['nope'] })
      .expect(400);
  });

  it('revokes a key at once (audited); another organization cannot', async () => {
    const made = await request(app)
      .post('/api/api-keys')
      .set(as(a.adminKey))
      .send({ name: 'short-lived', roles: ['viewer'] })
      .expect(201);
    await request(app).delete(`/api/api-keys/${made.body.key.id}`).set(as(b.adminKey)).expect(404);
    await request(app).get('/api/organization').set(as(made.body.secret)).expect(200);
    const revoked = await request(app).delete(`/api/api-keys/${made.body.key.id}`).set(as(a.adminKey)).expect(200);
    expect(revoked.body.key.revokedAt).not.toBeNull();
    await request(app).get('/api/organization').set(as(made.body.secret)).expect(401);
    const [audit] = await ctx.sql`select actor_name from audit_log
      where action = 'admin_credential.revoked' and target_id = ${made.body.key.id}`;
    expect(audit!.actorName).toBe('setup');
    // A SCIM token is not an API key.
    const [scim] =
      await ctx.sql`select id from credentials where organization_id = ${a.organization.id} and kind = 'scim'`;
    await request(app).delete(`/api/api-keys/${scim!.id}`).set(as(a.adminKey)).expect(404);
    await request(app).delete('/api/api-keys/not-a-uuid').set(as(a.adminKey)).expect(404);
  });
});
