import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Page } from 'playwright-core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { createSession } from '../../src/core/sessions.ts';
import { SESSION_COOKIE } from '../../src/http/session-cookie.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { launchChromium, SCREENSHOT_DIR, type HeadlessChromium } from '../support/browser.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { startSmtpServer } from '../support/smtp.ts';
import { authnRequestOf, encode, makeIdpKeys, responseXml, signAssertion, type IdpKeys } from './support/idp.ts';
import { idpMetadataXml } from './support/setup.ts';

/**
 * Required SSO in Chromium with the test IdP: orgsync on http://localhost, the IdP on
 * http://127.0.0.1. The owner switches it on in the console (a break-glass owner, signed in
 * without SSO); a member's invitation session ends; a new invitation link goes through the IdP.
 */
let ctx: AppContext;
let server: RunningServer;
let idpServer: http.Server;
let idpUrl: string;
let publicUrl: string;
let keys: IdpKeys;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let org: Awaited<ReturnType<typeof createTestOrganization>>;
/** Whom the IdP signs in (the person at the IdP's login page). */
let idpUser = '';
const browsers: HeadlessChromium[] = [];
/** Several browsers on a loaded machine: each step gets more time than vitest's default. */
const SLOW = { timeout: 120_000 };

const freePort = async () => {
  const probe = http.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => probe.once('listening', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
};

beforeAll(async () => {
  const port = await freePort();
  publicUrl = `http://localhost:${port}`;
  smtp = await startSmtpServer();
  ctx = await createTestContext({ PUBLIC_URL: publicUrl, PORT: String(port), HOST: '127.0.0.1', SMTP_URL: smtp.url });
  org = await createTestOrganization(ctx, 'rsso');
  keys = makeIdpKeys('required-sso-idp');
  const acsUrl = `${publicUrl}/saml/rsso/acs`;
  // The IdP answers every AuthnRequest for `idpUser` with a signed response, posted at once.
  idpServer = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://idp');
    if (url.pathname !== '/sso') {
      res.statusCode = 404;
      res.end();
      return;
    }
    const { id } = authnRequestOf(`http://idp${req.url}`);
    const xml = responseXml({
      acsUrl,
      audience: `${publicUrl}/saml/rsso/metadata`,
      nameId: idpUser,
      inResponseTo: id,
      issuer: `${idpUrl}/metadata`,
    });
    res.setHeader('content-type', 'text/html');
    res.end(
      `<!doctype html><title>IdP</title><form method="post" action="${acsUrl}"><input type="hidden" name="SAMLResponse" value="${encode(signAssertion(xml, keys))}"></form><script>document.forms[0].submit()</script>`,
    );
  });
  await new Promise<void>((resolve) => idpServer.listen(0, '127.0.0.1', resolve));
  idpUrl = `http://127.0.0.1:${(idpServer.address() as AddressInfo).port}`;
  server = await startServer(ctx);
  await request(server.server)
    .post('/api/saml/connections')
    .set('authorization', `Bearer ${org.adminKey}`)
    .send({ name: 'Local IdP', metadataXml: idpMetadataXml([keys.certificate], `${idpUrl}/metadata`, `${idpUrl}/sso`) })
    .expect(201);
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
});

afterAll(async () => {
  for (const browser of browsers) await browser.close();
  await new Promise((resolve) => (idpServer ? idpServer.close(resolve) : resolve(undefined)));
  await server?.shutdown('test done');
  await smtp?.close();
});

/** A new browser (its own profile: its own cookies) with one page. */
async function newBrowser(): Promise<Page> {
  const browser = await launchChromium();
  browsers.push(browser);
  return browser.context.newPage();
}

/** Invites through the admin API and answers the link the email carries. */
async function invitationLink(email: string): Promise<string> {
  await request(server.server)
    .post('/api/invitations')
    .set('authorization', `Bearer ${org.adminKey}`)
    .send({ emails: email })
    .expect(201);
  await createReconciler(ctx).events();
  await expect.poll(() => smtp.messages.some((m) => m.to.includes(email))).toBe(true);
  const mail = smtp.messages.filter((m) => m.to.includes(email)).pop()!;
  const token = /token=3D([A-Za-z0-9_-]+)/.exec(mail.raw.replace(/=\r?\n/g, ''))![1]!;
  return `${publicUrl}/invitations/accept?token=${token}`;
}

/** How the browser's session was made (its cookies, as the browser sends them), or the status when there is none. */
const via = async (page: Page) => {
  const res = await page.request.get(`${publicUrl}/saml/me`);
  return res.ok() ? ((await res.json()) as { session: { via: string } }).session.via : res.status();
};

const lastAttempt = async () =>
  (
    await ctx.sql<{ outcome: string; reason: string | null; email: string | null }[]>`
      select outcome, reason, email from saml_attempts where organization_id = ${org.organization.id} order by id desc limit 1`
  )[0];

describe('required SSO in Chromium', SLOW, () => {
  let early: Page;
  let owner: Page;

  it('before: a member joins by the invitation form (a session via invite)', async () => {
    early = await newBrowser();
    await early.goto(await invitationLink('early@rsso.test'));
    await early.getByLabel('First name').fill('Early');
    await early.getByLabel('Last name').fill('Member');
    await early.getByRole('button', { name: 'Accept and join' }).click();
    await early.getByText('You are signed in.').waitFor();
    expect(await via(early)).toBe('invite');
  });

  it('the owner (break-glass) switches it on in the console; the member is asked to sign in again', async () => {
    owner = await newBrowser();
    const session = await createSession(ctx.sql, ctx.config.serverSecret, {
      organizationId: org.organization.id,
      accountId: org.owner.id,
      via: 'invite',
    });
    await owner.context().addCookies([{ name: SESSION_COOKIE, value: session.secret, url: publicUrl }]);
    await owner.goto(`${publicUrl}/console/identity?tab=saml`);
    const card = owner.getByRole('form', { name: 'Require single sign-on' });
    await card.waitFor();
    const toggle = card.getByRole('switch', { name: 'Members sign in only through SAML' });
    expect(await toggle.isChecked()).toBe(false);
    await card.getByLabel('owner@rsso.test').check();
    await toggle.check();
    await owner.setViewportSize({ width: 1366, height: 900 });
    await card.screenshot({ path: path.join(SCREENSHOT_DIR, 'required-sso-1366.png') });
    await owner.setViewportSize({ width: 390, height: 844 });
    expect(await owner.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await card.screenshot({ path: path.join(SCREENSHOT_DIR, 'required-sso-390.png') });
    await owner.setViewportSize({ width: 1366, height: 900 });

    await card.getByRole('button', { name: 'Save' }).click();
    const confirm = owner.getByRole('alertdialog', { name: 'Require single sign-on' });
    await confirm.getByRole('button', { name: 'Require SSO' }).click();
    await expect.poll(() => owner.getByRole('status').first().textContent()).toContain('Single sign-on is required.');
    await owner.screenshot({ path: path.join(SCREENSHOT_DIR, 'required-sso-on.png'), fullPage: true });
    expect(await toggle.isChecked()).toBe(true);
    // The owner's own session (not SSO) goes on as break-glass, audited.
    expect(await via(owner)).toBe('invite');
    const [audited] = await ctx.sql<{ actorName: string; details: { use: string } }[]>`
      select actor_name, details from audit_log where organization_id = ${org.organization.id} and action = 'sso.break_glass_used'`;
    expect(audited).toMatchObject({ actorName: 'owner@rsso.test', details: { use: 'session' } });

    // The member's session by invitation has ended: the console asks to sign in.
    expect(await via(early)).toBe(401);
    await early.goto(`${publicUrl}/console/members`);
    await early.waitForURL(/\/console\/sign-in\?/);
  });

  it('an invitation accepted without SSO is refused and recorded in the attempt log', async () => {
    const link = await invitationLink('late@rsso.test');
    const token = new URL(link).searchParams.get('token')!;
    const page = await newBrowser();
    // The old form, posted from orgsync's own origin.
    await page.goto(`${publicUrl}/console/sign-in`);
    await Promise.all([
      page.waitForURL(/\/invitations\/accept$/),
      page.evaluate((value) => {
        const form = document.createElement('form');
        form.method = 'post';
        form.action = '/invitations/accept';
        const input = Object.assign(document.createElement('input'), { type: 'hidden', name: 'token', value });
        form.append(input);
        document.body.append(form);
        form.submit();
      }, token),
    ]);
    await page.getByRole('heading', { name: 'Single sign-on required' }).waitFor();
    expect(await lastAttempt()).toEqual({ outcome: 'refused', reason: 'sso_required', email: 'late@rsso.test' });
    expect(await via(page)).toBe(401);

    // The link on that page, as the invitation link itself, goes to the IdP; the signed answer
    // accepts the invitation and signs in through SSO.
    idpUser = 'late@rsso.test';
    await Promise.all([
      page.waitForURL(/\/console\/members$/),
      page.getByRole('link', { name: 'Continue with single sign-on' }).click(),
    ]);
    expect(await via(page)).toBe('saml');
    expect(await lastAttempt()).toEqual({ outcome: 'success', reason: 'invitation', email: 'late@rsso.test' });
    const [invitation] = await ctx.sql<{ status: string }[]>`
      select status from invitations where email = 'late@rsso.test'`;
    expect(invitation!.status).toBe('accepted');
  });

  it('a fresh invitation link leads straight to the IdP', async () => {
    const link = await invitationLink('fresh@rsso.test');
    const page = await newBrowser();
    const visited: string[] = [];
    page.on('request', (r) => visited.push(new URL(r.url()).origin + new URL(r.url()).pathname));
    idpUser = 'fresh@rsso.test';
    await page.goto(link);
    await page.waitForURL(/\/console\/members$/);
    expect(visited).toContain(`${idpUrl}/sso`);
    expect(await via(page)).toBe('saml');
    const [invitation] = await ctx.sql<{ status: string }[]>`
      select status from invitations where email = 'fresh@rsso.test'`;
    expect(invitation!.status).toBe('accepted');
  });
});
