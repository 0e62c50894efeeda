import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor, type Actor } from '../../src/core/actor.ts';
import { addDomain } from '../../src/core/domains.ts';
import { verifyDomainByDns } from '../support/domains.ts';
import { joinOrganization } from '../../src/core/memberships.ts';
import { updateOrganizationSettings } from '../../src/core/organizations.ts';
import { createApp } from '../../src/app.ts';
import type { SamlConnection } from '../../src/saml/connections.ts';
import type { SamlIdentity } from '../../src/saml/identity.ts';
import { signIn } from '../../src/saml/sign-in.ts';
import { inTransaction } from '../../src/storage/database.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { oktaUser, scimClient } from '../support/scim.ts';
import { startSmtpServer } from '../support/smtp.ts';

// One context with SINGLE_ORGANIZATION_POLICY on: organizations created with it start with the rule, which the core applies
// to every join (SCIM, SSO, verified domains, invitation links).
let ctx: AppContext;
let app: Express;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let x: Awaited<ReturnType<typeof createTestOrganization>>;
let y: Awaited<ReturnType<typeof createTestOrganization>>;

beforeAll(async () => {
  smtp = await startSmtpServer();
  ctx = await createTestContext({ SINGLE_ORGANIZATION_POLICY: 'true', SMTP_URL: smtp.url });
  app = createApp(ctx);
  x = await createTestOrganization(ctx, 'single-x');
  y = await createTestOrganization(ctx, 'single-y');
});
afterAll(async () => {
  await ctx.database.close();
  await smtp.close();
});

const as = (key: string) => ({ authorization: `Bearer ${key}` });
const membershipsOf = (accountId: string) =>
  ctx.sql`select organization_id, status from memberships where account_id = ${accountId} order by organization_id`;

describe('single-organization policy', () => {
  it('inviting someone who belongs elsewhere says so', async () => {
    const res = await request(app)
      .post('/api/invitations')
      .set(as(x.adminKey))
      .send({ emails: 'owner@single-y.test, free@single.test' })
      .expect(201);
    expect(res.body.results[0]).toMatchObject({
      invited: false,
      error: 'conflict',
      message: expect.stringMatching(/belongs to another organization.*SINGLE_ORGANIZATION_POLICY/),
    });
    expect(res.body.results[1]).toMatchObject({ invited: true });
  });

  it('SCIM provisioning of a member of another organization: 409 uniqueness naming the policy; nothing is created', async () => {
    const res = await scimClient(app, x.scimToken).post('/Users', oktaUser('owner@single-y.test')).expect(409);
    expect(res.body).toMatchObject({
      scimType: 'uniqueness',
      detail: expect.stringMatching(
        /owner@single-y\.test already belongs to another organization \(a member there\).*SINGLE_ORGANIZATION_POLICY/,
      ),
    });
    expect(
      await ctx.sql`select 1 from scim_users where organization_id = ${x.organization.id} and lower(user_name) = 'owner@single-y.test'`,
    ).toHaveLength(0);
    expect(await membershipsOf(y.owner.id)).toEqual([{ organizationId: y.organization.id, status: 'active' }]);
    // Someone invited elsewhere (free@single.test, pending in X) counts as belonging there.
    const invited = await scimClient(app, y.scimToken).post('/Users', oktaUser('free@single.test')).expect(409);
    expect(invited.body.detail).toMatch(/invited there/);
    // A person in no other organization is provisioned as usual.
    await scimClient(app, x.scimToken).post('/Users', oktaUser('new@single.test')).expect(201);
  });

  it('SSO sign-in joining through a verified domain is refused (a sign-in refusal), and so is any SSO join', async () => {
    const person = await ensureAccount(ctx.sql, { email: 'owner@single-y.test' });
    const sso: Actor = { type: 'account', id: person.id, name: person.email, channel: 'sso' };
    await addDomain(ctx.sql, x.organization.id, 'single-y.test', sso);
    await verifyDomainByDns(ctx, x.organization.id, 'single-y.test');
    const organization = await updateOrganizationSettings(
      ctx.sql,
      x.organization.id,
      { autoJoinVerifiedDomains: true },
      systemActor('cli'),
    );
    const connection = { id: crypto.randomUUID(), idpEntityId: 'https://idp.single.test' } as SamlConnection;
    const identity: SamlIdentity = {
      email: person.email,
      nameId: person.email,
      givenName: null,
      familyName: null,
      groups: [],
    };
    const viaDomain = await inTransaction(ctx.sql, (tx) => signIn(tx, organization, connection, identity)).catch(
      (e) => e,
    );
    expect(viaDomain).toMatchObject({
      reason: 'not_allowed_to_join',
      message: expect.stringMatching(/one organization per person \(SINGLE_ORGANIZATION_POLICY\)/),
    });
    const direct = await joinOrganization(
      ctx.sql,
      { organizationId: x.organization.id, accountId: person.id, source: 'sso' },
      sso,
    ).catch((e) => e);
    expect(direct).toMatchObject({ code: 'conflict' });
    expect(await membershipsOf(person.id)).toHaveLength(1);
  });

  it('accepting an invitation by its link while belonging elsewhere is refused; the invitation stays pending', async () => {
    const inv = (
      await request(app).post('/api/invitations').set(as(y.adminKey)).send({ emails: 'later@single.test' }).expect(201)
    ).body.results[0].invitation;
    await createReconciler(ctx).events();
    const mail = smtp.messages.filter((m) => m.to.includes('later@single.test')).pop();
    const token = /token=3D([A-Za-z0-9_-]+)/.exec(mail!.raw.replace(/=\r?\n/g, ''))![1]!;
    // Meanwhile (e.g. from before the policy was turned on) the person became a member of X.
    await ctx.sql`insert into memberships (organization_id, account_id, status, source, roles) values (${x.organization.id}, ${inv.accountId}, 'active', 'admin', '{member}')`;
    const page = await request(app)
      .post('/invitations/accept')
      .set('sec-fetch-site', 'same-origin')
      .type('form')
      .send({ token, givenName: 'L', familyName: 'L' })
      .expect(409);
    expect(page.text).toMatch(/already belongs to another organization/);
    expect(page.text).toContain('<a href="https://orgsync.test/">Continue to https://orgsync.test</a>');
    expect((await ctx.sql`select status from invitations where id = ${inv.id}`)[0]!.status).toBe('pending');
    expect(
      (
        await ctx.sql`select status from memberships where organization_id = ${y.organization.id} and account_id = ${inv.accountId}`
      )[0]!.status,
    ).toBe('invited');
  });

  it('is a setting of each organization, read and changed through the admin API (org:manage); a bad value changes nothing', async () => {
    expect((await request(app).get('/api/organization').set(as(x.adminKey)).expect(200)).body.singleOrganization).toBe(
      true,
    );
    const bad = await request(app)
      .patch('/api/organization')
      .set(as(x.adminKey))
      .send({ singleOrganization: 'yes' })
      .expect(400);
    expect(bad.body).toMatchObject({ error: 'invalid' });
    // Both organizations have the rule (from the configuration): a member of Y cannot join X ...
    await scimClient(app, x.scimToken).post('/Users', oktaUser('owner@single-y.test')).expect(409);
    // ... nor with X's rule off while Y's holds: Y's members belong to Y only.
    await request(app).patch('/api/organization').set(as(x.adminKey)).send({ singleOrganization: false }).expect(200);
    await scimClient(app, x.scimToken).post('/Users', oktaUser('owner@single-y.test')).expect(409);
    // With both off, the person joins X too.
    await request(app).patch('/api/organization').set(as(y.adminKey)).send({ singleOrganization: false }).expect(200);
    await scimClient(app, x.scimToken).post('/Users', oktaUser('owner@single-y.test')).expect(201);
    expect(await membershipsOf(y.owner.id)).toHaveLength(2);
  });
});
