import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor } from '../../src/core/actor.ts';
import { joinOrganization } from '../../src/core/memberships.ts';
import { createSession, resolveSession } from '../../src/core/sessions.ts';
import { createApp } from '../../src/app.ts';
import { SESSION_COOKIE } from '../../src/http/session-cookie.ts';
import { TEST_PUBLIC_URL, createTestContext, createTestOrganization } from '../support/context.ts';

/**
 * Cookie-authenticated calls that change something must come from orgsync's own pages: a form
 * another site posts (the browser adds the cookie by itself) is refused and changes nothing.
 */
let ctx: AppContext;
let app: Express;
let org: Awaited<ReturnType<typeof createTestOrganization>>;

beforeAll(async () => {
  ctx = await createTestContext();
  app = createApp(ctx);
  org = await createTestOrganization(ctx, 'csrf');
});
afterAll(async () => ctx.database.close());

async function signedInMember(email: string) {
  const account = await ensureAccount(ctx.sql, { email });
  await joinOrganization(
    ctx.sql,
    { organizationId: org.organization.id, accountId: account.id, source: 'admin' },
    systemActor('admin'),
  );
  const { secret } = await createSession(ctx.sql, ctx.config.serverSecret, {
    organizationId: org.organization.id,
    accountId: account.id,
    via: 'saml',
  });
  return { accountId: account.id, secret, cookie: `${SESSION_COOKIE}=${secret}` };
}

const statusOf = async (accountId: string) =>
  (
    await ctx.sql<{ status: string }[]>`
      select status from memberships where organization_id = ${org.organization.id} and account_id = ${accountId}`
  )[0]!.status;

describe('CSRF on cookie-authenticated calls', () => {
  it('refuses a cross-site form POST to /api/leave (Origin, Sec-Fetch-Site, or neither) and changes nothing', async () => {
    const m = await signedInMember('leaver@csrf.test');
    const crossSite = [
      { origin: 'https://evil.example' },
      { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' },
      { 'sec-fetch-site': 'same-site' }, // a sibling subdomain is not orgsync
      { origin: 'null' },
      {}, // no browser sends neither
    ];
    for (const headers of crossSite) {
      const res = await request(app)
        .post('/api/leave')
        .type('form')
        .set(headers)
        .set('cookie', m.cookie)
        .send('x=1')
        .expect(403);
      expect(res.body).toMatchObject({ error: 'cross_site_request', message: expect.stringMatching(/refused/) });
    }
    expect(await statusOf(m.accountId)).toBe('active');
  });

  it("accepts orgsync's own Origin, Sec-Fetch-Site: same-origin, or the console's header", async () => {
    for (const headers of [
      { origin: TEST_PUBLIC_URL },
      { 'sec-fetch-site': 'same-origin' },
      { 'x-orgsync-csrf': '1', origin: 'https://evil.example' },
    ]) {
      const m = await signedInMember(`ok-${Object.keys(headers).join('-')}@csrf.test`);
      await request(app).post('/api/leave').set(headers).set('cookie', m.cookie).expect(204);
      expect(await statusOf(m.accountId)).toBe('removed');
    }
  });

  it('leaves reads and API-key calls alone', async () => {
    const m = await signedInMember('reader@csrf.test');
    await request(app).get('/api/organization').set('cookie', m.cookie).expect(200);
    await request(app)
      .post('/api/groups')
      .set({ authorization: `Bearer ${org.adminKey}`, origin: 'https://evil.example' })
      .send({ displayName: 'Keyed' })
      .expect(201);
  });

  it('refuses a cross-site POST to /saml/logout, which keeps the session', async () => {
    const m = await signedInMember('stays@csrf.test');
    await request(app).post('/saml/logout').set('origin', 'https://evil.example').set('cookie', m.cookie).expect(403);
    expect(await resolveSession(ctx.sql, ctx.config.serverSecret, m.secret)).not.toBeNull();
    await request(app).post('/saml/logout').set('sec-fetch-site', 'same-origin').set('cookie', m.cookie).expect(204);
    expect(await resolveSession(ctx.sql, ctx.config.serverSecret, m.secret)).toBeNull();
  });
});
