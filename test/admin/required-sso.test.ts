import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCredential } from '../../src/core/credentials.ts';
import { createOrganization } from '../../src/core/organizations.ts';
import { systemActor } from '../../src/core/actor.ts';
import { createSession } from '../../src/core/sessions.ts';
import { SESSION_COOKIE } from '../../src/http/session-cookie.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { authnRequestOf, responseXml, signAssertion } from '../saml/support/idp.ts';
import { CookieJar, lastAttempt, postResponse, samlFixture, type SamlFixture } from '../saml/support/setup.ts';
import { startSmtpServer } from '../support/smtp.ts';

let f: SamlFixture;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;

beforeAll(async () => {
  smtp = await startSmtpServer();
  f = await samlFixture('rsso', {}, { SMTP_URL: smtp.url });
});
afterAll(async () => {
  await f.ctx.database.close();
  await smtp.close();
});

const admin = () => ({ authorization: `Bearer ${f.adminKey}` });
const setRequired = (body: object) => request(f.app).patch('/api/organization').set(admin()).send(body);
const cookieOf = (secret: string) => `${SESSION_COOKIE}=${secret}`;
const me = (cookie: string) => request(f.app).get('/saml/me').set('cookie', cookie);

async function invite(email: string, roles?: string[]): Promise<{ token: string; accountId: string }> {
  const res = await request(f.app)
    .post('/api/invitations')
    .set(admin())
    .send({ emails: email, ...(roles ? { roles } : {}) })
    .expect(201);
  await createReconciler(f.ctx).events();
  const mail = smtp.messages.filter((m) => m.to.includes(email)).pop();
  const token = /token=3D([A-Za-z0-9_-]+)/.exec(mail!.raw.replace(/=\r?\n/g, ''))![1]!;
  const results = res.body.results as { invitation: { accountId: string } }[];
  return { token, accountId: results[0]!.invitation.accountId };
}

/** Accepts an invitation on the form (no SSO), as before SSO was required; answers the response. */
const acceptWithoutSso = (token: string) =>
  request(f.app)
    .post('/invitations/accept')
    .set('origin', f.ctx.config.publicUrl)
    .type('form')
    .send({ token, givenName: 'In', familyName: 'Vited' });

const sessionSecretOf = (res: { headers: Record<string, unknown> }) =>
  /orgsync_session=([^;]+)/.exec(((res.headers['set-cookie'] as string[] | undefined) ?? []).join('\n'))?.[1];

/** The test IdP's signed answer to the AuthnRequest at `location`, for `email`. */
function idpAnswer(location: string, email: string): string {
  const { id } = authnRequestOf(location);
  return signAssertion(responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: email, inResponseTo: id }), f.idp);
}

const audits = (action: string) =>
  f.ctx.sql<{ actorName: string; details: Record<string, unknown> }[]>`
    select actor_name, details from audit_log where organization_id = ${f.organization.id} and action = ${action} order by id`;

describe('required SSO', () => {
  it('can be switched on only with an enabled SAML connection, and names only owners as break-glass', async () => {
    const bare = await createOrganization(
      f.ctx.sql,
      { name: 'No SSO', slug: 'no-sso', ownerEmail: 'owner@no-sso.test' },
      systemActor('cli'),
    );
    const key = await issueCredential(
      f.ctx.sql,
      f.ctx.config.serverSecret,
      { organizationId: bare.organization.id, kind: 'admin', name: 'k', roles: ['owner'] },
      systemActor('cli'),
    );
    const refused = await request(f.app)
      .patch('/api/organization')
      .set('authorization', `Bearer ${key.secret}`)
      .send({ requireSso: true })
      .expect(409);
    expect(refused.body).toMatchObject({
      error: 'conflict',
      message: expect.stringMatching(/enabled SAML connection/),
    });

    const member = await invite('not-owner@rsso.test');
    const notOwner = await setRequired({ requireSso: true, ssoBreakGlassAccountIds: [member.accountId] });
    expect(notOwner.status).toBe(400);
    expect(notOwner.body.message).toMatch(/must be owners/);
    const organization = await request(f.app).get('/api/organization').set(admin()).expect(200);
    expect(organization.body).toMatchObject({ requireSso: false, ssoBreakGlassAccountIds: [] });
  });

  it('on: ends the sessions not made through SSO, keeps SSO and break-glass sessions, audits it', async () => {
    // Before: a member who joined by invitation link (session via invite), and the owner.
    const invited = await invite('early@rsso.test');
    const inviteSession = sessionSecretOf(await acceptWithoutSso(invited.token).expect(200))!;
    await me(cookieOf(inviteSession)).expect(200);
    const owner = (await f.ctx.sql<{ id: string }[]>`select id from accounts where email = 'owner@rsso.test'`)[0]!;
    const ownerSession = await createSession(f.ctx.sql, f.ctx.config.serverSecret, {
      organizationId: f.organization.id,
      accountId: owner.id,
      via: 'invite',
    });
    // An SSO session of the invited member.
    const browser = new CookieJar();
    const login = await request(f.app).get('/saml/rsso/login').query({ returnTo: '/console' }).expect(302);
    browser.store(login);
    const acs = await postResponse(f, idpAnswer(login.headers.location!, 'early@rsso.test'), undefined, browser);
    expect(acs.status).toBe(303);
    const ssoSession = sessionSecretOf(acs)!;

    const on = await setRequired({ requireSso: true, ssoBreakGlassAccountIds: [owner.id] }).expect(200);
    expect(on.body).toMatchObject({ requireSso: true, ssoBreakGlassAccountIds: [owner.id] });

    await me(cookieOf(inviteSession)).expect(401);
    const [ended] = await f.ctx.sql<{ revokedAt: Date | null }[]>`
      select revoked_at from sessions where via = 'invite' and account_id = ${invited.accountId}`;
    expect(ended!.revokedAt).not.toBeNull();
    expect((await me(cookieOf(ssoSession)).expect(200)).body.session.via).toBe('saml');
    // The break-glass owner's session works; its first use is audited, once.
    await me(cookieOf(ownerSession.secret)).expect(200);
    await request(f.app).get('/api/organization').set('cookie', cookieOf(ownerSession.secret)).expect(200);
    expect(await audits('sso.break_glass_used')).toEqual([
      {
        actorName: 'owner@rsso.test',
        details: { via: 'invite', sessionId: ownerSession.session.id, use: 'session' },
      },
    ]);
    expect(await audits('sso.required')).toEqual([
      { actorName: 'setup', details: { breakGlassAccountIds: [owner.id] } },
    ]);
    expect((await audits('sso.sessions_ended'))[0]!.details).toMatchObject({
      reason: 'sso_required',
      sessions: 1,
      accountIds: [invited.accountId],
    });
    // Admin API keys are unaffected.
    await request(f.app).get('/api/members').set(admin()).expect(200);
  });

  it('refuses an invitation accepted without SSO, in the attempt log, and keeps it pending', async () => {
    const { token, accountId } = await invite('late@rsso.test');
    const res = await acceptWithoutSso(token).expect(403);
    expect(res.text).toContain('requires single sign-on');
    expect(sessionSecretOf(res)).toBeUndefined();
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'refused', reason: 'sso_required', email: 'late@rsso.test' });
    const [row] = await f.ctx.sql<{ status: string }[]>`
      select status from invitations where account_id = ${accountId} and organization_id = ${f.organization.id}`;
    expect(row!.status).toBe('pending');
  });

  it('the invitation link leads to the IdP and the invitation is accepted by SSO with the invited email only', async () => {
    const { token, accountId } = await invite('sso-invited@rsso.test');
    const browser = new CookieJar();
    const link = await request(f.app).get('/invitations/accept').query({ token }).expect(302);
    expect(link.headers.location).toMatch(/^https:\/\/idp\.example\.test\/sso\?SAMLRequest=/);
    browser.store(link);

    // Someone else signed in at the IdP: refused, the invitation stays pending.
    const other = await postResponse(f, idpAnswer(link.headers.location!, 'someone@rsso.test'), undefined, browser);
    expect(other.status).toBe(403);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'refused', reason: 'invitation_email_mismatch' });

    const again = await request(f.app).get('/invitations/accept').query({ token }).expect(302);
    browser.store(again);
    const acs = await postResponse(f, idpAnswer(again.headers.location!, 'sso-invited@rsso.test'), undefined, browser);
    expect(acs.status).toBe(303);
    expect(acs.headers.location).toBe(`${f.ctx.config.publicUrl}/console`);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'success', reason: 'invitation' });
    const [invitation] = await f.ctx.sql<{ status: string }[]>`
      select status from invitations where account_id = ${accountId} and organization_id = ${f.organization.id}`;
    expect(invitation!.status).toBe('accepted');
    expect((await me(cookieOf(sessionSecretOf(acs)!)).expect(200)).body.session.via).toBe('saml');
  });

  it('a break-glass owner accepts an invitation without SSO, audited', async () => {
    const { token, accountId } = await invite('co-owner@rsso.test', ['owner']);
    const owner = (await request(f.app).get('/api/organization').set(admin())).body.ssoBreakGlassAccountIds as string[];
    await setRequired({ ssoBreakGlassAccountIds: [...owner, accountId] }).expect(200);
    const res = await acceptWithoutSso(token).expect(200);
    const secret = sessionSecretOf(res)!;
    expect((await me(cookieOf(secret)).expect(200)).body.session.via).toBe('invite');
    expect((await audits('sso.break_glass_used')).at(-1)).toMatchObject({
      actorName: 'co-owner@rsso.test',
      details: { via: 'invite', use: 'sign_in' },
    });
    // Taken off the list: the session ends.
    await setRequired({ ssoBreakGlassAccountIds: owner }).expect(200);
    await me(cookieOf(secret)).expect(401);
  });

  it('the last enabled connection can be neither disabled nor deleted while SSO is required', async () => {
    const disable = await request(f.app)
      .patch(`/api/saml/connections/${f.connectionId}`)
      .set(admin())
      .send({ enabled: false })
      .expect(409);
    expect(disable.body.message).toMatch(/SSO is required/);
    await request(f.app).delete(`/api/saml/connections/${f.connectionId}`).set(admin()).expect(409);
    const [connection] = await f.ctx.sql<
      { enabled: boolean }[]
    >`select enabled from saml_connections where id = ${f.connectionId}`;
    expect(connection!.enabled).toBe(true);

    await setRequired({ requireSso: false }).expect(200);
    expect((await audits('sso.not_required')).length).toBe(1);
    await request(f.app)
      .patch(`/api/saml/connections/${f.connectionId}`)
      .set(admin())
      .send({ enabled: false })
      .expect(200);
    await setRequired({ requireSso: true }).expect(409);
    await request(f.app)
      .patch(`/api/saml/connections/${f.connectionId}`)
      .set(admin())
      .send({ enabled: true })
      .expect(200);
  });
});
