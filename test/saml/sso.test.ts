import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { verifyDomainByDns } from '../support/domains.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { makeIdpKeys, responseXml, signAssertion, signResponse } from './support/idp.ts';
import {
  idpMetadataXml,
  lastAttempt,
  postResponse,
  samlFixture,
  sessionCookieOf,
  startLogin,
  type SamlFixture,
} from './support/setup.ts';

let f: SamlFixture;
beforeAll(async () => {
  f = await samlFixture();
});
afterAll(async () => f.ctx.database.close());

describe('SAML sign-in', () => {
  it('an owner signs in SP-initiated and /saml/me tells who they are', async () => {
    const requestId = await startLogin(f, '/app/home');
    const xml = signAssertion(
      responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: 'owner@acme.test', inResponseTo: requestId }),
      f.idp,
    );
    const res = await postResponse(f, xml);
    expect(res.status, res.text).toBe(303);
    expect(res.headers.location).toBe('https://orgsync.test/app/home');
    const cookie = res.headers['set-cookie']![0]!;
    expect(cookie).toMatch(/orgsync_session=/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/Secure/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'success', reason: 'member', nameId: 'owner@acme.test' });

    const me = await request(f.app).get('/saml/me').set('cookie', cookie.split(';')[0]!).expect(200);
    expect(me.body.account.email).toBe('owner@acme.test');
    expect(me.body.organization.slug).toBe('acme');
    expect(me.body.roles).toEqual(['owner']);
    expect(me.body.permissions).toContain('org:manage');

    const logout = await request(f.app).post('/saml/logout').set('cookie', cookie.split(';')[0]!).expect(204);
    // The browser drops the cookie: empty, expiring in the past.
    const cleared = logout.headers['set-cookie']![0]!;
    expect(cleared).toMatch(/^orgsync_session=;/);
    expect(new Date(/Expires=([^;]+)/.exec(cleared)![1]!).getTime()).toBeLessThan(Date.now());
    await request(f.app).get('/saml/me').set('cookie', cookie.split(';')[0]!).expect(401);
  });

  it('accepts a response signed only at the Response level', async () => {
    const xml = signResponse(responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: 'owner@acme.test' }), f.idp);
    const res = await postResponse(f, xml);
    expect(res.status, res.text).toBe(303);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'success' });
  });
});

const admin = () => ({ authorization: `Bearer ${f.adminKey}` });
const testActor = { type: 'system' as const, name: 'test', channel: 'system' as const };

async function signInAs(email: string, extra: Partial<Parameters<typeof responseXml>[0]> = {}) {
  return postResponse(
    f,
    signAssertion(responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: email, ...extra }), f.idp),
  );
}

async function membershipOf(email: string) {
  const [row] = await f.ctx.sql<{ status: string; source: string; roles: string[] }[]>`
    select m.status, m.source, m.roles from memberships m join accounts a on a.id = m.account_id
    where m.organization_id = ${f.organization.id} and lower(a.email) = lower(${email})`;
  return row ?? null;
}

describe('sessions', () => {
  it('lasts 8 hours, or less when the IdP session ends sooner', async () => {
    const expiry = (res: { headers: Record<string, unknown> }) =>
      new Date(/Expires=([^;]+)/.exec((res.headers['set-cookie'] as string[])[0]!)![1]!).getTime() - Date.now();
    const usual = await signInAs('owner@acme.test');
    expect(expiry(usual)).toBeGreaterThan(7.9 * 3600_000);
    const short = await signInAs('owner@acme.test', { sessionNotOnOrAfter: new Date(Date.now() + 30 * 60_000) });
    expect(expiry(short)).toBeLessThan(31 * 60_000);
    expect(expiry(short)).toBeGreaterThan(25 * 60_000);
  });
});

describe('join rules', () => {
  it('accepts a pending invitation on first sign-in', async () => {
    await request(f.app)
      .post('/api/invitations')
      .set(admin())
      .send({ emails: 'invitee@partner.example', roles: ['viewer'] })
      .expect(201);
    const res = await signInAs('invitee@partner.example');
    expect(res.status, res.text).toBe(303);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'success', reason: 'invitation' });
    expect(await membershipOf('invitee@partner.example')).toMatchObject({ status: 'active', roles: ['viewer'] });
    const [invitation] = await f.ctx
      .sql`select status from invitations where organization_id = ${f.organization.id} and lower(email) = 'invitee@partner.example'`;
    expect(invitation!.status).toBe('accepted');
  });

  it('matches a person provisioned by SCIM by email', async () => {
    const { ensureAccount } = await import('../../src/core/accounts.ts');
    const { joinOrganization } = await import('../../src/core/memberships.ts');
    const account = await ensureAccount(f.ctx.sql, { email: 'Provisioned@Acme.test' });
    await joinOrganization(
      f.ctx.sql,
      { organizationId: f.organization.id, accountId: account.id, source: 'scim' },
      { ...testActor, channel: 'scim' },
    );
    const res = await signInAs('provisioned@acme.test');
    expect(res.status, res.text).toBe(303);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'success', reason: 'scim' });
  });

  it('refuses someone unknown, naming whom to ask, and changes nothing', async () => {
    const requestId = await startLogin(f);
    const res = await signInAs('stranger@acme-corp.example', {
      assertionId: '_stranger-assertion',
      inResponseTo: requestId,
    });
    expect(res.status).toBe(403);
    expect(res.text).toContain('data-reason="not_allowed_to_join"');
    expect(res.text).toContain('owner@acme.test');
    expect(sessionCookieOf(res)).toBeUndefined();
    expect(await lastAttempt(f)).toMatchObject({
      outcome: 'refused',
      reason: 'not_allowed_to_join',
      email: 'stranger@acme-corp.example',
    });
    const [audit] = await f.ctx
      .sql`select action, details from audit_log where organization_id = ${f.organization.id} order by id desc limit 1`;
    expect(audit).toMatchObject({
      action: 'sso.refused',
      details: { reason: 'not_allowed_to_join', email: 'stranger@acme-corp.example' },
    });
    expect(audit!.details.message).toContain('cannot join by itself');
    const [account] = await f.ctx.sql`select 1 from accounts where lower(email) = 'stranger@acme-corp.example'`;
    expect(account).toBeUndefined();
    // The signed assertion stays consumed (see the next test); the request is still pending.
    const [used] = await f.ctx.sql`select 1 from saml_replay_cache where assertion_id = '_stranger-assertion'`;
    expect(used).toBeDefined();
    const [pending] = await f.ctx.sql`select 1 from saml_requests where id = ${requestId}`;
    expect(pending).toBeDefined();
  });

  it('keeps a refused assertion consumed: it cannot be replayed once an invitation exists', async () => {
    const captured = signAssertion(
      responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: 'latecomer@partner.example' }),
      f.idp,
    );
    expect((await postResponse(f, captured)).status).toBe(403);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'refused', reason: 'not_allowed_to_join' });
    await request(f.app)
      .post('/api/invitations')
      .set(admin())
      .send({ emails: 'latecomer@partner.example', roles: ['viewer'] })
      .expect(201);
    const replayed = await postResponse(f, captured);
    expect(replayed.status).toBe(403);
    expect(replayed.text).toContain('data-reason="replayed_assertion"');
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'refused', reason: 'replayed_assertion' });
    expect(await membershipOf('latecomer@partner.example')).toMatchObject({ status: 'invited' });
    // A new sign-in at the IdP (a new assertion) gets in.
    expect((await signInAs('latecomer@partner.example')).status).toBe(303);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'success', reason: 'invitation' });
  });

  it('joins an email in a verified domain with the default role only when auto-join is on', async () => {
    await request(f.app).post('/api/domains').set(admin()).send({ domain: 'acme-corp.example' }).expect(201);
    await verifyDomainByDns(f.ctx, f.organization.id, 'acme-corp.example');
    const off = await signInAs('newcomer@acme-corp.example');
    expect(off.status).toBe(403);
    expect(await lastAttempt(f)).toMatchObject({ reason: 'not_allowed_to_join' });

    await request(f.app).patch('/api/organization').set(admin()).send({ autoJoinVerifiedDomains: true }).expect(200);
    const on = await signInAs('newcomer@acme-corp.example', {
      attributes: { email: ['newcomer@acme-corp.example'], firstName: ['New'], lastName: ['Comer'] },
    });
    expect(on.status, on.text).toBe(303);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'success', reason: 'verified_domain' });
    expect(await membershipOf('newcomer@acme-corp.example')).toEqual({
      status: 'active',
      source: 'sso',
      roles: ['member'],
    });
    const [account] = await f.ctx
      .sql`select given_name, family_name from accounts where lower(email) = 'newcomer@acme-corp.example'`;
    expect(account).toEqual({ givenName: 'New', familyName: 'Comer' });
    const audit = await f.ctx
      .sql`select action, channel from audit_log where organization_id = ${f.organization.id} and channel = 'sso' order by id`;
    expect(audit.map((a) => a.action)).toEqual(expect.arrayContaining(['member.joined', 'sso.login', 'sso.refused']));
  });

  it('prefers a pending invitation to verified-domain auto-join, and auto-joins with the organization default role', async () => {
    await request(f.app).post('/api/domains').set(admin()).send({ domain: 'order.example' }).expect(201);
    await verifyDomainByDns(f.ctx, f.organization.id, 'order.example');
    await request(f.app)
      .patch('/api/organization')
      .set(admin())
      .send({ autoJoinVerifiedDomains: true, defaultRole: 'viewer' })
      .expect(200);
    try {
      await request(f.app)
        .post('/api/invitations')
        .set(admin())
        .send({ emails: 'invited@order.example', roles: ['billing'] })
        .expect(201);
      expect((await signInAs('invited@order.example')).status).toBe(303);
      expect(await lastAttempt(f)).toMatchObject({ outcome: 'success', reason: 'invitation' });
      expect(await membershipOf('invited@order.example')).toMatchObject({ status: 'active', roles: ['billing'] });

      expect((await signInAs('walk-in@order.example')).status).toBe(303);
      expect(await lastAttempt(f)).toMatchObject({ outcome: 'success', reason: 'verified_domain' });
      expect(await membershipOf('walk-in@order.example')).toEqual({
        status: 'active',
        source: 'sso',
        roles: ['viewer'],
      });
    } finally {
      await request(f.app).patch('/api/organization').set(admin()).send({ defaultRole: 'member' }).expect(200);
    }
  });

  it('refuses, with the refusal page, someone from another organization under the single-organization policy', async () => {
    const { createOrganization } = await import('../../src/core/organizations.ts');
    const { configureMembershipPolicy } = await import('../../src/core/policy.ts');
    await request(f.app).post('/api/domains').set(admin()).send({ domain: 'policy.example' }).expect(201);
    await verifyDomainByDns(f.ctx, f.organization.id, 'policy.example');
    await request(f.app).patch('/api/organization').set(admin()).send({ autoJoinVerifiedDomains: true }).expect(200);
    await createOrganization(
      f.ctx.sql,
      { name: 'Elsewhere', slug: 'elsewhere', ownerEmail: 'taken@policy.example' },
      testActor,
    );
    configureMembershipPolicy({ singleOrganization: true });
    try {
      const res = await signInAs('taken@policy.example');
      expect(res.status).toBe(403);
      expect(res.text).toContain('data-reason="not_allowed_to_join"');
      expect(res.text).toContain('SINGLE_ORGANIZATION_POLICY');
      expect(await lastAttempt(f)).toMatchObject({ outcome: 'refused', reason: 'not_allowed_to_join' });
      expect(await membershipOf('taken@policy.example')).toBeNull();
    } finally {
      configureMembershipPolicy({ singleOrganization: false });
    }
    expect((await signInAs('taken@policy.example')).status).toBe(303);
  });

  it('refuses suspended and removed members', async () => {
    const { findAccountByEmail } = await import('../../src/core/accounts.ts');
    const { suspendMember, removeMember } = await import('../../src/core/memberships.ts');
    const account = (await findAccountByEmail(f.ctx.sql, 'newcomer@acme-corp.example'))!;
    await suspendMember(f.ctx.sql, f.organization.id, account.id, testActor);
    expect((await signInAs('newcomer@acme-corp.example')).status).toBe(403);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'refused', reason: 'membership_suspended' });
    await removeMember(f.ctx.sql, f.organization.id, account.id, testActor);
    expect((await signInAs('newcomer@acme-corp.example')).status).toBe(403);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'refused', reason: 'membership_removed' });
  });

  it('reads the email from Entra ID claim URIs and records groups as saml groups', async () => {
    const claims = {
      'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress': ['owner@acme.test'],
      'http://schemas.microsoft.com/ws/2008/06/identity/claims/groups': ['Engineering', 'Admins'],
    };
    expect((await signInAs('00u1abcd-persistent-id', { attributes: claims })).status).toBe(303);
    const groupsOf = async () =>
      (
        await f.ctx.sql<{ displayName: string }[]>`
        select g.display_name from groups g join group_members gm on gm.organization_id = g.organization_id and gm.group_id = g.id
        join accounts a on a.id = gm.account_id
        where g.organization_id = ${f.organization.id} and g.source = 'saml' and a.email = 'owner@acme.test' order by 1`
      ).map((g) => g.displayName);
    expect(await groupsOf()).toEqual(['Admins', 'Engineering']);
    const [event] = await f.ctx
      .sql`select type from outbox where organization_id = ${f.organization.id} and type like 'group.%' order by id desc limit 1`;
    expect(event).toBeDefined();

    claims['http://schemas.microsoft.com/ws/2008/06/identity/claims/groups'] = ['Engineering'];
    expect((await signInAs('00u1abcd-persistent-id', { attributes: claims })).status).toBe(303);
    expect(await groupsOf()).toEqual(['Engineering']);
  });

  it('uses a per-connection attribute mapping', async () => {
    await request(f.app)
      .patch(`/api/saml/connections/${f.connectionId}`)
      .set(admin())
      .send({ attributeMapping: { email: 'workEmail' } })
      .expect(200);
    try {
      const res = await signInAs('opaque-id-123', {
        attributes: { workEmail: ['owner@acme.test'], email: ['someone-else@acme.test'] },
      });
      expect(res.status, res.text).toBe(303);
      expect(await lastAttempt(f)).toMatchObject({
        outcome: 'success',
        email: 'owner@acme.test',
        nameId: 'opaque-id-123',
      });
      const none = await signInAs('opaque-id-123', { attributes: { email: ['owner@acme.test'] } });
      expect(none.status).toBe(403);
      expect(await lastAttempt(f)).toMatchObject({ outcome: 'refused', reason: 'no_email' });
    } finally {
      await request(f.app)
        .patch(`/api/saml/connections/${f.connectionId}`)
        .set(admin())
        .send({ attributeMapping: {} })
        .expect(200);
    }
  });
});

describe('SP metadata and the admin API', () => {
  it('publishes SP metadata with entity id, ACS URL and certificate', async () => {
    const res = await request(f.app).get('/saml/acme/metadata').expect(200);
    expect(res.headers['content-type']).toMatch(/samlmetadata\+xml/);
    expect(res.text).toContain('entityID="https://orgsync.test/saml/acme/metadata"');
    expect(res.text).toContain('Location="https://orgsync.test/saml/acme/acs"');
    expect(res.text).toMatch(/KeyDescriptor use="signing"/);
    expect(res.text).toMatch(/KeyDescriptor use="encryption"/);
    await request(f.app).get('/saml/nope/metadata').expect(404);
  });

  it('answers the SP URLs to paste into the IdP', async () => {
    const res = await request(f.app).get('/api/saml/service-provider').set(admin()).expect(200);
    expect(res.body).toMatchObject({
      entityId: 'https://orgsync.test/saml/acme/metadata',
      acsUrl: 'https://orgsync.test/saml/acme/acs',
      metadataUrl: 'https://orgsync.test/saml/acme/metadata',
      loginUrl: 'https://orgsync.test/saml/acme/login',
    });
    expect(res.body.certificate).toMatch(/BEGIN CERTIFICATE/);
  });

  it('creates a connection from fields, lists, updates, disables and deletes it', async () => {
    const other = makeIdpKeys('second');
    const created = await request(f.app)
      .post('/api/saml/connections')
      .set(admin())
      .send({
        name: 'Entra',
        idpEntityId: 'https://sts.windows.net/tenant/',
        ssoUrl: 'https://login.microsoftonline.com/tenant/saml2',
        certificates: [other.certificate],
      })
      .expect(201);
    expect(created.body).toMatchObject({ name: 'Entra', enabled: true, allowIdpInitiated: true });
    expect(created.body.certificateInfo[0].subject).toContain('CN=second');
    const list = await request(f.app).get('/api/saml/connections').set(admin()).expect(200);
    expect(list.body.items).toHaveLength(2);
    await request(f.app)
      .patch(`/api/saml/connections/${created.body.id}`)
      .set(admin())
      .send({ enabled: false, clockSkewSeconds: 30 })
      .expect(200);
    const got = await request(f.app).get(`/api/saml/connections/${created.body.id}`).set(admin()).expect(200);
    expect(got.body).toMatchObject({ enabled: false, clockSkewSeconds: 30 });
    const rotated = makeIdpKeys('rotated');
    const reread = await request(f.app)
      .patch(`/api/saml/connections/${created.body.id}`)
      .set(admin())
      .send({
        metadataXml: idpMetadataXml(
          [other.certificate, rotated.certificate],
          'https://sts.windows.net/tenant/',
          'https://login.example/new-sso',
        ),
      })
      .expect(200);
    expect(reread.body).toMatchObject({
      ssoUrl: 'https://login.example/new-sso',
      certificates: [other.certificate, rotated.certificate],
    });
    await request(f.app).delete(`/api/saml/connections/${created.body.id}`).set(admin()).expect(204);
    await request(f.app).get(`/api/saml/connections/${created.body.id}`).set(admin()).expect(404);
  });

  it('lets only a caller holding every permission connect or change an IdP (it can assert anyone); an admin may rename or disable one', async () => {
    const { issueCredential } = await import('../../src/core/credentials.ts');
    const { TEST_SERVER_SECRET } = await import('../support/context.ts');
    const key = await issueCredential(
      f.ctx.sql,
      TEST_SERVER_SECRET,
      { organizationId: f.organization.id, kind: 'admin', name: 'an admin', roles: ['admin'] },
      testActor,
    );
    const asAdmin = { authorization: `Bearer ${key.secret}` };
    const own = makeIdpKeys('attacker');
    const refused = await request(f.app)
      .post('/api/saml/connections')
      .set(asAdmin)
      .send({
        name: 'Mine',
        idpEntityId: 'https://idp.attacker.example',
        ssoUrl: 'https://idp.attacker.example/sso',
        certificates: [own.certificate],
      })
      .expect(403);
    expect(refused.body.details.missing).toEqual(['billing:manage']);
    expect(refused.body.message).toContain('connect an identity provider');
    const [connection] = (await request(f.app).get('/api/saml/connections').set(asAdmin).expect(200)).body.items;
    await request(f.app)
      .patch(`/api/saml/connections/${connection.id}`)
      .set(asAdmin)
      .send({ certificates: [own.certificate] })
      .expect(403);
    const renamed = await request(f.app)
      .patch(`/api/saml/connections/${connection.id}`)
      .set(asAdmin)
      .send({ name: 'Renamed', enabled: false })
      .expect(200);
    expect(renamed.body).toMatchObject({ name: 'Renamed', enabled: false, certificates: connection.certificates });
    await request(f.app)
      .patch(`/api/saml/connections/${connection.id}`)
      .set(asAdmin)
      .send({ enabled: true })
      .expect(403);
    await request(f.app)
      .patch(`/api/saml/connections/${connection.id}`)
      .set(admin())
      .send({ name: connection.name, enabled: true })
      .expect(200);
    expect((await request(f.app).get('/api/saml/connections').set(admin()).expect(200)).body.items).toHaveLength(1);
  });

  it('refuses bad connection input clearly and creates nothing', async () => {
    const bad = async (body: object, message: RegExp) => {
      const res = await request(f.app).post('/api/saml/connections').set(admin()).send(body);
      expect(res.status).toBe(400);
      expect(res.body.message).toMatch(message);
    };
    await bad({ name: 'x' }, /metadataXml/);
    await bad({ name: 'x', metadataXml: '<nope' }, /metadata/);
    await bad({ name: 'x', metadataXml: '<!DOCTYPE x [<!ENTITY a "b">]><x/>' }, /DOCTYPE/);
    await bad(
      { name: 'x', idpEntityId: 'e', ssoUrl: 'https://idp.example/sso', certificates: ['not a cert'] },
      /certificate/,
    );
    await bad(
      { name: 'x', idpEntityId: 'e', ssoUrl: 'ftp://idp.example/sso', certificates: [f.idp.certificate] },
      /ssoUrl/,
    );
    const dup = await request(f.app)
      .post('/api/saml/connections')
      .set(admin())
      .send({ name: 'again', metadataXml: idpMetadataXml([f.idp.certificate]) });
    expect(dup.status).toBe(409);
    const list = await request(f.app).get('/api/saml/connections').set(admin()).expect(200);
    expect(list.body.items).toHaveLength(1);
  });

  it('pages through the SSO attempt log', async () => {
    const first = await request(f.app).get('/api/saml/attempts').query({ limit: 2 }).set(admin()).expect(200);
    expect(first.body.items).toHaveLength(2);
    expect(first.body.items[0]).toMatchObject({
      outcome: expect.any(String),
      idpEntityId: 'https://idp.example.test/metadata',
    });
    const second = await request(f.app)
      .get('/api/saml/attempts')
      .query({ limit: 2, before: first.body.next })
      .set(admin())
      .expect(200);
    expect(Number(second.body.items[0].id)).toBeLessThan(Number(first.body.items[1].id));
    const refused = await request(f.app)
      .get('/api/saml/attempts')
      .query({ outcome: 'refused' })
      .set(admin())
      .expect(200);
    expect(refused.body.items.every((a: { outcome: string }) => a.outcome === 'refused')).toBe(true);
    await request(f.app).get('/api/saml/attempts').query({ limit: 0 }).set(admin()).expect(400);
  });

  it('requires org:manage', async () => {
    const requestId = await startLogin(f);
    const res = await request(f.app)
      .post('/api/invitations')
      .set(admin())
      .send({ emails: 'plain@partner.example', roles: ['member'] });
    expect(res.status).toBe(201);
    const login = await signInAs('plain@partner.example', { inResponseTo: requestId });
    const cookie = login.headers['set-cookie']![0]!.split(';')[0]!;
    await request(f.app).get('/api/saml/connections').set('cookie', cookie).expect(403);
    await request(f.app).get('/api/saml/connections').expect(401);
  });
});

describe('starting a sign-in', () => {
  it('sends a signed AuthnRequest to the IdP over HTTP-Redirect', async () => {
    const res = await request(f.app).get('/saml/acme/login').expect(302);
    const { authnRequestOf } = await import('./support/idp.ts');
    const { xml, url } = authnRequestOf(res.headers.location!);
    expect(url.origin + url.pathname).toBe('https://idp.example.test/sso');
    expect(url.searchParams.get('Signature')).toBeTruthy();
    expect(xml).toContain('AssertionConsumerServiceURL="https://orgsync.test/saml/acme/acs"');
    expect(xml).toContain('<saml:Issuer>https://orgsync.test/saml/acme/metadata</saml:Issuer>');
  });

  it('asks which connection when there are several, and explains when there is none', async () => {
    const second = await request(f.app)
      .post('/api/saml/connections')
      .set(admin())
      .send({
        name: 'Second',
        idpEntityId: 'https://second.example/idp',
        ssoUrl: 'https://second.example/sso',
        certificates: [f.idp.certificate],
      })
      .expect(201);
    try {
      const ambiguous = await request(f.app).get('/saml/acme/login').expect(400);
      expect(ambiguous.text).toContain('connection=');
      const chosen = await request(f.app).get('/saml/acme/login').query({ connection: second.body.id }).expect(302);
      expect(chosen.headers.location).toMatch(/^https:\/\/second\.example\/sso\?/);
      await request(f.app).get('/saml/acme/login').query({ connection: 'not-a-connection' }).expect(400);
    } finally {
      await request(f.app).delete(`/api/saml/connections/${second.body.id}`).set(admin()).expect(204);
    }
    await request(f.app).get('/saml/nobody/login').expect(404);
  });
});

describe('a message over the body limit (1 MB)', () => {
  const overLimit = 'A'.repeat(1024 * 1024 + 1024);

  async function expectOversizedRefusal(res: { status: number; headers: Record<string, unknown>; text: string }) {
    expect(res.status).toBe(413);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.text).toContain('data-reason="oversized"');
    expect(res.text).toContain('request body limit of 1048576 bytes');
    expect(await lastAttempt(f)).toMatchObject({
      outcome: 'refused',
      reason: 'oversized',
      message: expect.stringContaining('body limit'),
    });
    const [audit] = await f.ctx
      .sql`select action, details from audit_log where organization_id = ${f.organization.id} order by id desc limit 1`;
    expect(audit).toMatchObject({ action: 'sso.refused', details: { reason: 'oversized' } });
  }

  it('is a SAML refusal: logged, in the attempt log and the audit, and explained on the error page', async () => {
    const warn = vi.spyOn(f.ctx.log, 'warn');
    try {
      const res = await request(f.app).post('/saml/acme/acs').type('form').send({ SAMLResponse: overLimit });
      await expectOversizedRefusal(res);
      expect(warn).toHaveBeenCalledWith(
        expect.objectContaining({ organizationId: f.organization.id, reason: 'oversized' }),
        'SAML sign-in refused',
      );
    } finally {
      warn.mockRestore();
    }
  });

  it('is refused the same way when the body is chunked (no declared length)', async () => {
    const server = f.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const res = await new Promise<{ status: number; headers: Record<string, unknown>; text: string }>(
        (resolve, reject) => {
          const req = http.request(
            {
              host: '127.0.0.1',
              port: (server.address() as AddressInfo).port,
              method: 'POST',
              path: '/saml/acme/acs',
              headers: { 'content-type': 'application/x-www-form-urlencoded' },
            },
            (answer) => {
              let text = '';
              answer
                .setEncoding('utf8')
                .on('data', (chunk) => (text += chunk))
                .on('end', () => resolve({ status: answer.statusCode!, headers: answer.headers, text }));
            },
          );
          req.on('error', reject);
          req.write('SAMLResponse=');
          for (let sent = 0; sent < overLimit.length; sent += 64 * 1024)
            req.write(overLimit.slice(sent, sent + 64 * 1024));
          req.end();
        },
      );
      await expectOversizedRefusal(res);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('answers the error page for an unknown organization too, with nothing in an attempt log', async () => {
    const before = await lastAttempt(f);
    const res = await request(f.app).post('/saml/nobody/acs').type('form').send({ SAMLResponse: overLimit });
    expect(res.status).toBe(413);
    expect(res.text).toContain('data-reason="oversized"');
    expect(await lastAttempt(f)).toEqual(before);
  });

  it('leaves the JSON 413 of other routes alone', async () => {
    const res = await request(f.app).post('/api/invitations').set(admin()).send({ emails: overLimit });
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('payload_too_large');
  });
});

describe('the SSO attempt log', () => {
  it("forgets attempts older than 90 days (the reconciler's housekeeping)", async () => {
    await signInAs('owner@acme.test');
    await f.ctx
      .sql`update saml_attempts set at = now() - interval '91 days' where organization_id = ${f.organization.id} and id = (select min(id) from saml_attempts where organization_id = ${f.organization.id})`;
    const count = async () =>
      (
        await f.ctx.sql<
          { n: number }[]
        >`select count(*)::int as n from saml_attempts where organization_id = ${f.organization.id}`
      )[0]!.n;
    const before = await count();
    expect((await createReconciler(f.ctx).housekeeping()).ssoAttemptsPruned).toBe(1);
    expect(await count()).toBe(before - 1);
    const [old] = await f.ctx
      .sql`select 1 from saml_attempts where organization_id = ${f.organization.id} and at < now() - interval '90 days'`;
    expect(old).toBeUndefined();
  });
});
