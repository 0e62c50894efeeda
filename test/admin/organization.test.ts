import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { createApp } from '../../src/http/app.ts';
import { createTxtLookup } from '../../src/core/domain-dns.ts';
import { isInVerifiedDomain, recheckVerifiedDomains } from '../../src/core/domains.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';

let ctx: AppContext;
let app: Express;
let a: Awaited<ReturnType<typeof createTestOrganization>>;
let b: Awaited<ReturnType<typeof createTestOrganization>>;
let dns: TestDnsServer;

beforeAll(async () => {
  dns = await startDnsServer();
  ctx = await createTestContext({ DNS_SERVERS: dns.server });
  app = createApp(ctx);
  a = await createTestOrganization(ctx, 'settings-a');
  b = await createTestOrganization(ctx, 'settings-b');
});
afterAll(async () => {
  await ctx.database.close();
  await dns.close();
});

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

describe('verified domains (DNS TXT)', () => {
  const verify = (key: string, domain: string) => request(app).post(`/api/domains/${domain}/verify`).set(as(key));

  it('add (with a TXT token), verify by DNS, one organization per verified domain, remove', async () => {
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
    expect(added.body.record).toEqual({ name: 'acme.example.com', type: 'TXT', value: added.body.verificationToken });
    await request(app).post('/api/domains').set(as(a.adminKey)).send({ domain: 'acme.example.com' }).expect(409);
    await request(app).post('/api/domains').set(as(a.adminKey)).send({ domain: 'not a domain' }).expect(400);
    const other = await request(app)
      .post('/api/domains')
      .set(as(b.adminKey))
      .send({ domain: 'acme.example.com' })
      .expect(201);

    // No record yet: refused, saying what to publish; nothing changes.
    const missing = await verify(a.adminKey, 'acme.example.com').expect(409);
    expect(missing.body.message).toContain(added.body.verificationToken);
    expect(missing.body.details).toMatchObject({ expected: added.body.verificationToken, found: [] });
    // Another organization's token, or a look-alike, does not verify.
    dns.publish('acme.example.com', 'v=spf1 -all', `${added.body.verificationToken}x`);
    await verify(a.adminKey, 'acme.example.com').expect(409);
    // A lookup that gets no answer is not "absent": 503, try again.
    dns.failing('acme.example.com');
    expect((await verify(a.adminKey, 'acme.example.com').expect(503)).body.error).toBe('unavailable');
    dns.failing('acme.example.com', false);

    dns.publish('acme.example.com', 'v=spf1 -all', added.body.verificationToken, other.body.verificationToken);
    expect((await verify(a.adminKey, 'acme.example.com').expect(200)).body.verifiedAt).not.toBeNull();
    // B published its token too, but a verified domain belongs to one organization.
    expect((await verify(b.adminKey, 'acme.example.com').expect(409)).body.message).toMatch(/another organization/);
    await verify(a.adminKey, 'nope.example.com').expect(404);
    const viewer = await request(app).get('/api/domains').set(as(b.adminKey)).expect(200);
    expect(viewer.body.items).toEqual([expect.objectContaining({ domain: 'acme.example.com', verifiedAt: null })]);
    const audit = await ctx.sql`select details from audit_log
      where organization_id = ${a.organization.id} and action = 'domain.verified'`;
    expect(audit).toEqual([{ details: { method: 'dns' } }]);
    await request(app).delete('/api/domains/acme.example.com').set(as(a.adminKey)).expect(204);
    await verify(b.adminKey, 'acme.example.com').expect(200);
  });

  it('refuses public email providers', async () => {
    for (const domain of ['gmail.com', 'Outlook.com', 'yahoo.co.jp', 'proton.me']) {
      const res = await request(app).post('/api/domains').set(as(a.adminKey)).send({ domain }).expect(400);
      expect(res.body.message).toMatch(/public email provider/);
    }
  });

  it('the daily re-check unverifies a domain whose record is gone (audited, announced), never on a failed lookup', async () => {
    const added = await request(app)
      .post('/api/domains')
      .set(as(a.adminKey))
      .send({ domain: 'recheck.example' })
      .expect(201);
    dns.publish('recheck.example', added.body.verificationToken);
    await verify(a.adminKey, 'recheck.example').expect(200);
    const lookupTxt = createTxtLookup([dns.server]);
    const stillThere = await recheckVerifiedDomains(ctx.sql, lookupTxt);
    expect(stillThere).toMatchObject({ lost: 0, unavailable: 0 });

    dns.failing('recheck.example');
    expect(await recheckVerifiedDomains(ctx.sql, lookupTxt)).toMatchObject({ lost: 0, unavailable: 1 });
    dns.failing('recheck.example', false);
    expect(await isInVerifiedDomain(ctx.sql, a.organization.id, 'someone@recheck.example')).toBe(true);

    dns.unpublish('recheck.example');
    expect(await recheckVerifiedDomains(ctx.sql, lookupTxt)).toMatchObject({ lost: 1 });
    // Auto-join through it stops: the domain is no longer verified.
    expect(await isInVerifiedDomain(ctx.sql, a.organization.id, 'someone@recheck.example')).toBe(false);
    const listed = await request(app).get('/api/domains').set(as(a.adminKey)).expect(200);
    expect(listed.body.items.find((d: { domain: string }) => d.domain === 'recheck.example')).toMatchObject({
      verifiedAt: null,
      verificationLostAt: expect.any(String),
    });
    const [audit] = await ctx.sql`select channel, details from audit_log
      where organization_id = ${a.organization.id} and action = 'domain.verification_lost'`;
    expect(audit).toMatchObject({ channel: 'sync', details: { domain: 'recheck.example' } });
    const [event] = await ctx.sql`select payload from outbox
      where organization_id = ${a.organization.id} and type = 'domain.verification_lost'`;
    expect(event!.payload).toMatchObject({ domain: 'recheck.example' });
    // Publishing the record again and verifying restores it.
    dns.publish('recheck.example', added.body.verificationToken);
    await verify(a.adminKey, 'recheck.example').expect(200);
  });
});
