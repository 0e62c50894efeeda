import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { systemActor } from '../../src/core/actor.ts';
import { issueCredential } from '../../src/core/credentials.ts';
import { createGroup } from '../../src/core/groups.ts';
import { createGroupRoleMapping } from '../../src/core/role-mapping.ts';
import { createSession } from '../../src/core/sessions.ts';
import { createApp } from '../../src/app.ts';
import { SESSION_COOKIE } from '../../src/http/session-cookie.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { oktaUser, scimClient } from '../support/scim.ts';
import { startSmtpServer } from '../support/smtp.ts';

let ctx: AppContext;
let app: Express;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let a: Awaited<ReturnType<typeof createTestOrganization>>;
let b: Awaited<ReturnType<typeof createTestOrganization>>;

beforeAll(async () => {
  smtp = await startSmtpServer();
  ctx = await createTestContext({ SMTP_URL: smtp.url });
  app = createApp(ctx);
  a = await createTestOrganization(ctx, 'inv-a');
  b = await createTestOrganization(ctx, 'inv-b');
});
afterAll(async () => {
  await ctx.database.close();
  await smtp.close();
});

const as = (key: string) => ({ authorization: `Bearer ${key}` });
const invite = (body: object, key = a.adminKey) => request(app).post('/api/invitations').set(as(key)).send(body);

/** Delivers queued emails over the real SMTP server and returns the accept token sent to `to`. */
async function tokenMailedTo(to: string): Promise<string> {
  await createReconciler(ctx).events();
  const mail = smtp.messages.filter((m) => m.to.includes(to)).pop();
  const match = /token=3D([A-Za-z0-9_-]+)/.exec(mail!.raw.replace(/=\r?\n/g, ''));
  return match![1]!;
}

describe('invitations', () => {
  it('the accept form refuses a POST from another site (login CSRF) and keeps the invitation', async () => {
    await invite({ emails: 'csrf@x.test' }).expect(201);
    const token = await tokenMailedTo('csrf@x.test');
    for (const headers of [{ 'sec-fetch-site': 'cross-site' }, { origin: 'https://evil.example' }, {}]) {
      const res = await request(app)
        .post('/invitations/accept')
        .set(headers)
        .type('form')
        .send({ token, givenName: 'C', familyName: 'S' })
        .expect(403);
      expect(res.text).toContain('not sent from orgsync');
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    const [row] = await ctx.sql<{ status: string }[]>`select status from invitations where email = 'csrf@x.test'`;
    expect(row!.status).toBe('pending');
    await request(app)
      .post('/invitations/accept')
      .set('origin', 'https://orgsync.test')
      .type('form')
      .send({ token, givenName: 'C', familyName: 'S' })
      .expect(200);
  });

  it('invite several addresses separated by spaces, commas or new lines, with a per-address result', async () => {
    const group = await createGroup(
      ctx.sql,
      { organizationId: a.organization.id, source: 'local', displayName: 'Design' },
      systemActor('admin'),
    );
    const res = await invite({
      emails: 'ann@x.test, bob@x.test\ncid@x.test  not-an-email owner@inv-a.test',
      roles: ['viewer'],
      groupIds: [group.id],
    }).expect(201);
    expect(res.body).toMatchObject({ invited: 3, failed: 2 });
    expect(res.body.results.find((r: { email: string }) => r.email === 'not-an-email')).toMatchObject({
      invited: false,
      error: 'invalid',
    });
    expect(res.body.results.find((r: { email: string }) => r.email === 'owner@inv-a.test')).toMatchObject({
      invited: false,
      message: expect.stringMatching(/already a member/),
    });
    const again = await invite({ emails: ['ANN@x.test'] }).expect(400);
    expect(again.body.results[0].message).toMatch(/pending invitation/);
    const members = await request(app).get('/api/members?status=pending').set(as(a.adminKey)).expect(200);
    expect(members.body.items.map((m: { email: string }) => m.email).sort()).toEqual([
      'ann@x.test',
      'bob@x.test',
      'cid@x.test',
    ]);
  });

  it('refuses more than 20 addresses, pointing to the CSV import; unknown roles and groups', async () => {
    const many = Array.from({ length: 21 }, (_, i) => `p${i}@x.test`).join(' ');
    expect((await invite({ emails: many }).expect(400)).body.message).toMatch(/at most 20 .*CSV import/);
    expect((await invite({ emails: 'r@x.test', roles: ['wizard'] }).expect(400)).body.results[0].message).toMatch(
      /unknown role/,
    );
    expect(
      (await invite({ emails: 'g@x.test', groupIds: [crypto.randomUUID()] }).expect(400)).body.results[0].message,
    ).toMatch(/unknown group/);
    expect(await ctx.sql`select 1 from invitations where email in ('r@x.test', 'g@x.test')`).toHaveLength(0);
  });

  it('a new person accepts by email link: names, joins with the invited role and groups, is signed in; the link then stops working', async () => {
    await invite({ emails: 'dee@x.test', roles: ['billing'] }).expect(201);
    const token = await tokenMailedTo('dee@x.test');
    const form = await request(app).get(`/invitations/accept?token=${token}`).expect(200);
    expect(form.text).toContain('Join inv-a');
    expect(form.text).toContain('name="givenName"');
    const accepted = await request(app)
      .post('/invitations/accept')
      .set('sec-fetch-site', 'same-origin')
      .type('form')
      .send({ token, givenName: 'Dee', familyName: 'Doe' })
      .expect(200);
    // No dead end: the page links onward to the console (billing may view members).
    expect(accepted.text).toContain('<a href="https://orgsync.test/console/">Continue to the console</a>');
    const cookie = accepted.headers['set-cookie']![0]!;
    expect(cookie).toMatch(new RegExp(`^${SESSION_COOKIE}=.*HttpOnly`));
    const me = await request(app).get('/api/members?email=dee@').set('cookie', cookie.split(';')[0]!).expect(200);
    expect(me.body.items[0]).toMatchObject({
      status: 'active',
      source: 'invite',
      roles: ['billing'],
      givenName: 'Dee',
    });
    const reused = await request(app)
      .post('/invitations/accept')
      .set('sec-fetch-site', 'same-origin')
      .type('form')
      .send({ token })
      .expect(410);
    expect(reused.text).toContain('already been accepted');
    await request(app).get('/invitations/accept?token=osinv_bogus').expect(404);
  });

  it('roles change while pending; resend gives a new link and kills the old one; revoke', async () => {
    const res = await invite({ emails: 'eve@x.test' }).expect(201);
    const { invitation } = res.body.results[0];
    await request(app)
      .put(`/api/members/${invitation.accountId}/roles`)
      .set(as(a.adminKey))
      .send({ roles: ['admin'] })
      .expect(200);
    const old = await tokenMailedTo('eve@x.test');
    await request(app).post(`/api/invitations/${invitation.id}/resend`).set(as(b.adminKey)).expect(404);
    await request(app).post(`/api/invitations/${invitation.id}/resend`).set(as(a.adminKey)).expect(200);
    const fresh = await tokenMailedTo('eve@x.test');
    expect(fresh).not.toBe(old);
    await request(app).get(`/invitations/accept?token=${old}`).expect(404);
    await request(app)
      .post('/invitations/accept')
      .set('sec-fetch-site', 'same-origin')
      .type('form')
      .send({ token: fresh, givenName: 'Eve', familyName: 'E' })
      .expect(200);
    const [m] = await ctx.sql`select roles, status from memberships where account_id = ${invitation.accountId}`;
    expect(m).toEqual({ roles: ['admin'], status: 'active' });

    const other = (await invite({ emails: 'fay@x.test' }).expect(201)).body.results[0].invitation;
    const token = await tokenMailedTo('fay@x.test');
    await request(app).delete(`/api/invitations/${other.id}`).set(as(b.adminKey)).expect(404);
    await request(app).delete(`/api/invitations/${other.id}`).set(as(a.adminKey)).expect(204);
    expect((await request(app).get(`/invitations/accept?token=${token}`).expect(410)).text).toContain('withdrawn');
  });

  it('an expired invitation gives a clear page and never a join', async () => {
    const inv = (await invite({ emails: 'gus@x.test' }).expect(201)).body.results[0].invitation;
    const token = await tokenMailedTo('gus@x.test');
    await ctx.sql`update invitations set expires_at = now() - interval '1 minute' where id = ${inv.id}`;
    expect(
      (
        await request(app)
          .post('/invitations/accept')
          .set('sec-fetch-site', 'same-origin')
          .type('form')
          .send({ token })
          .expect(410)
      ).text,
    ).toContain('expired');
    expect((await ctx.sql`select status from memberships where account_id = ${inv.accountId}`)[0]!.status).toBe(
      'invited',
    );
  });

  it('a person who already has an account accepts by following the link alone; someone signed in as another person is refused', async () => {
    const res = await invite({ emails: 'owner@inv-b.test', roles: ['viewer'] }).expect(201);
    const accountId = res.body.results[0].invitation.accountId;
    const token = await tokenMailedTo('owner@inv-b.test');
    // Signed in as someone else (a.owner): refused, and nothing changes.
    const { secret: other } = await createSession(ctx.sql, ctx.config.serverSecret, {
      organizationId: a.organization.id,
      accountId: a.owner.id,
      via: 'saml',
    });
    const form = await request(app)
      .get(`/invitations/accept?token=${token}`)
      .set('cookie', `${SESSION_COOKIE}=${other}`)
      .expect(403);
    expect(form.text).toContain('signed in as someone else');
    const refused = await request(app)
      .post('/invitations/accept')
      .set('sec-fetch-site', 'same-origin')
      .type('form')
      .set('cookie', `${SESSION_COOKIE}=${other}`)
      .send({ token })
      .expect(403);
    expect(refused.text).toContain('signed in as someone else');
    expect(
      (
        await ctx.sql`select status from memberships where organization_id = ${a.organization.id} and account_id = ${accountId}`
      )[0]!.status,
    ).toBe('invited');
    // The emailed link proves the address: no sign-in needed (their organization may have no SSO).
    const page = await request(app).get(`/invitations/accept?token=${token}`).expect(200);
    expect(page.text).toContain('Accept and join');
    const accepted = await request(app)
      .post('/invitations/accept')
      .set('sec-fetch-site', 'same-origin')
      .type('form')
      .send({ token })
      .expect(200);
    expect(accepted.headers['set-cookie']![0]).toMatch(new RegExp(`^${SESSION_COOKIE}=`));
    const [m] =
      await ctx.sql`select status, roles from memberships where organization_id = ${a.organization.id} and account_id = ${accountId}`;
    expect(m).toEqual({ status: 'active', roles: ['viewer'] });
    // Signed in as themselves works too (checked on another invitation).
    const second = await request(app)
      .post('/api/invitations')
      .set(as(b.adminKey))
      .send({ emails: 'owner@inv-a.test' })
      .expect(201);
    const again = await tokenMailedTo('owner@inv-a.test');
    const { secret: own } = await createSession(ctx.sql, ctx.config.serverSecret, {
      organizationId: a.organization.id,
      accountId: a.owner.id,
      via: 'saml',
    });
    await request(app)
      .post('/invitations/accept')
      .set('sec-fetch-site', 'same-origin')
      .type('form')
      .set('cookie', `${SESSION_COOKIE}=${own}`)
      .send({ token: again })
      .expect(200);
    expect(
      (await ctx.sql`select status from invitations where id = ${second.body.results[0].invitation.id}`)[0]!.status,
    ).toBe('accepted');
  });

  it('every refusal page links onward to the service, as the welcome page does', async () => {
    const onward = '<p><a href="https://orgsync.test/">Continue to https://orgsync.test</a></p>';
    const accept = (token: string, headers: Record<string, string> = { 'sec-fetch-site': 'same-origin' }) =>
      request(app)
        .post('/invitations/accept')
        .set(headers)
        .type('form')
        .send({ token, givenName: 'R', familyName: 'R' });
    const invited = async (email: string) => {
      const { invitation } = (await invite({ emails: email }).expect(201)).body.results[0];
      return { id: invitation.id as string, token: await tokenMailedTo(email) };
    };
    const pages: [number, string, { status: number; text: string }][] = [];
    const refused = (status: number, says: string, res: { status: number; text: string }) =>
      pages.push([status, says, res]);

    refused(404, 'not valid', await request(app).get('/invitations/accept?token=osinv_bogus'));
    refused(404, 'not valid', await accept('osinv_bogus'));
    const revoked = await invited('refused-revoked@x.test');
    await request(app).delete(`/api/invitations/${revoked.id}`).set(as(a.adminKey)).expect(204);
    refused(410, 'withdrawn', await request(app).get(`/invitations/accept?token=${revoked.token}`));
    const expired = await invited('refused-expired@x.test');
    await ctx.sql`update invitations set expires_at = now() - interval '1 minute' where id = ${expired.id}`;
    refused(410, 'expired', await accept(expired.token));
    const used = await invited('refused-used@x.test');
    await accept(used.token).expect(200);
    refused(410, 'already been accepted', await request(app).get(`/invitations/accept?token=${used.token}`));
    const other = await invited('refused-other@x.test');
    const { secret } = await createSession(ctx.sql, ctx.config.serverSecret, {
      organizationId: a.organization.id,
      accountId: a.owner.id,
      via: 'saml',
    });
    const signedInElsewhere = { cookie: `${SESSION_COOKIE}=${secret}` };
    refused(
      403,
      'signed in as someone else',
      await request(app).get(`/invitations/accept?token=${other.token}`).set(signedInElsewhere),
    );
    refused(
      403,
      'signed in as someone else',
      await accept(other.token, { ...signedInElsewhere, 'sec-fetch-site': 'same-origin' }),
    );
    refused(403, 'not sent from orgsync', await accept(other.token, { origin: 'https://evil.example' }));

    for (const [status, says, res] of pages) {
      expect([res.status, res.text]).toEqual([status, expect.stringContaining(says)]);
      expect(res.text).toContain(onward);
    }
  });

  it('names given at invite time are stored on the new account', async () => {
    const res = await invite({ emails: 'ida@x.test', givenName: 'Ida', familyName: 'Ives' }).expect(201);
    const [account] =
      await ctx.sql`select given_name, family_name from accounts where id = ${res.body.results[0].invitation.accountId}`;
    expect(account).toEqual({ givenName: 'Ida', familyName: 'Ives' });
    // The accept page then asks for no name.
    expect(
      (
        await request(app)
          .get(`/invitations/accept?token=${await tokenMailedTo('ida@x.test')}`)
          .expect(200)
      ).text,
    ).not.toContain('name="givenName"');
  });

  it('accepting by the link joins the invited groups and records invite.accepted once', async () => {
    const group = await createGroup(
      ctx.sql,
      { organizationId: a.organization.id, source: 'local', displayName: 'Research' },
      systemActor('admin'),
    );
    const inv = (await invite({ emails: 'jo@x.test', groupIds: [group.id] }).expect(201)).body.results[0].invitation;
    await request(app)
      .post('/invitations/accept')
      .set('sec-fetch-site', 'same-origin')
      .type('form')
      .send({ token: await tokenMailedTo('jo@x.test'), givenName: 'Jo', familyName: 'J' })
      .expect(200);
    expect(
      await ctx.sql`select 1 from group_members where group_id = ${group.id} and account_id = ${inv.accountId}`,
    ).toHaveLength(1);
    const audit =
      await ctx.sql`select channel, details from audit_log where action = 'invite.accepted' and target_id = ${inv.id}`;
    expect(audit).toEqual([
      {
        channel: 'admin',
        details: { email: 'jo@x.test', accountId: inv.accountId, groupIds: [group.id], via: 'invite' },
      },
    ]);
    expect(
      await ctx.sql`select 1 from outbox where type = 'invite.accepted' and payload->>'invitationId' = ${inv.id}`,
    ).toHaveLength(1);
  });

  it('an invitee provisioned through SCIM accepts the invitation: invited roles and groups, invite.accepted', async () => {
    const group = await createGroup(
      ctx.sql,
      { organizationId: a.organization.id, source: 'local', displayName: 'Support' },
      systemActor('admin'),
    );
    const inv = (await invite({ emails: 'kim@x.test', roles: ['billing'], groupIds: [group.id] }).expect(201)).body
      .results[0].invitation;
    await scimClient(app, a.scimToken).post('/Users', oktaUser('kim@x.test')).expect(201);
    const [m] =
      await ctx.sql`select status, roles from memberships where organization_id = ${a.organization.id} and account_id = ${inv.accountId}`;
    expect(m).toEqual({ status: 'active', roles: ['billing'] });
    expect(
      await ctx.sql`select 1 from group_members where group_id = ${group.id} and account_id = ${inv.accountId}`,
    ).toHaveLength(1);
    const [audit] =
      await ctx.sql`select channel, actor_name, details from audit_log where action = 'invite.accepted' and target_id = ${inv.id}`;
    expect(audit).toMatchObject({ channel: 'scim', actorName: 'idp', details: { groupIds: [group.id], via: 'scim' } });
    expect((await ctx.sql`select status from invitations where id = ${inv.id}`)[0]!.status).toBe('accepted');
  });

  it('a viewer (session or key) cannot invite: 403 naming the missing permission, nothing invited', async () => {
    const viewerKey = (
      await issueCredential(
        ctx.sql,
        ctx.config.serverSecret,
        { organizationId: a.organization.id, kind: 'admin', name: 'viewer', roles: ['viewer'] },
        systemActor('cli'),
      )
    ).secret;
    const res = await invite({ emails: 'lee@x.test' }, viewerKey).expect(403);
    expect(res.body).toEqual({
      error: 'forbidden',
      message: 'missing permission: members:manage',
      details: { missing: ['members:manage'] },
    });
    expect(await ctx.sql`select 1 from invitations where email = 'lee@x.test'`).toHaveLength(0);
  });

  it('an admin cannot invite with a role beyond its own permissions', async () => {
    const adminKey = (
      await issueCredential(
        ctx.sql,
        ctx.config.serverSecret,
        { organizationId: a.organization.id, kind: 'admin', name: 'admin', roles: ['admin'] },
        systemActor('cli'),
      )
    ).secret;
    const res = await invite({ emails: 'max@x.test, ned@x.test', roles: ['owner'] }, adminKey).expect(403);
    expect(res.body).toMatchObject({
      error: 'forbidden',
      details: { missing: ['billing:manage'] },
      message: expect.stringMatching(
        /^missing permission: billing:manage \(needed to invite with the role\(s\) owner\)/,
      ),
    });
    expect(await ctx.sql`select 1 from invitations where email in ('max@x.test', 'ned@x.test')`).toHaveLength(0);
    await invite({ emails: 'max@x.test', roles: ['admin'] }, adminKey).expect(201);
  });

  it('an admin cannot invite into, nor resend an invitation into, a group mapped to a role beyond its own', async () => {
    const adminKey = (
      await issueCredential(
        ctx.sql,
        ctx.config.serverSecret,
        { organizationId: a.organization.id, kind: 'admin', name: 'admin 2', roles: ['admin'] },
        systemActor('cli'),
      )
    ).secret;
    const owners = await createGroup(
      ctx.sql,
      { organizationId: a.organization.id, source: 'local', displayName: 'Owners club' },
      systemActor('admin'),
    );
    // By the owner, before the mapping exists: an invitation into the group, pending.
    const pending = (await invite({ emails: 'early@x.test', groupIds: [owners.id] }).expect(201)).body.results[0]
      .invitation;
    await createGroupRoleMapping(
      ctx.sql,
      { organizationId: a.organization.id, groupName: 'owners CLUB', roles: ['owner'] },
      systemActor('cli'),
    );

    const res = await invite({ emails: 'sneaky@x.test', roles: ['member'], groupIds: [owners.id] }, adminKey).expect(
      403,
    );
    expect(res.body).toMatchObject({
      details: { missing: ['billing:manage'] },
      message: expect.stringContaining('invite into a group mapped to the role(s) owner'),
    });
    expect(await ctx.sql`select 1 from invitations where email = 'sneaky@x.test'`).toHaveLength(0);
    const resent = await request(app)
      .post(`/api/invitations/${pending.id}/resend`)
      .set('authorization', `Bearer ${adminKey}`)
      .expect(403);
    expect(resent.body.details.missing).toEqual(['billing:manage']);
    expect((await ctx.sql`select expires_at from invitations where id = ${pending.id}`)[0]!.expiresAt).toEqual(
      new Date(pending.expiresAt),
    );
    // The owner may.
    await invite({ emails: 'sneaky@x.test', groupIds: [owners.id] }).expect(201);
  });

  it('the default expiry is 72 hours', async () => {
    const inv = (await invite({ emails: 'hal@x.test' }).expect(201)).body.results[0].invitation;
    const hours = (new Date(inv.expiresAt).getTime() - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(71.9);
    expect(hours).toBeLessThanOrEqual(72);
  });
});
