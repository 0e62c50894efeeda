import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { launchChromium, type HeadlessChromium } from '../support/browser.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { authnRequestOf, encode, makeIdpKeys, responseXml, signAssertion, type IdpKeys } from './support/idp.ts';
import { idpMetadataXml } from './support/setup.ts';

/**
 * The local demo in a real browser: orgsync on http://localhost, an IdP on http://127.0.0.1 (another
 * site), so the IdP's POST to the ACS is cross-site, as with a cloud IdP. Chromium keeps
 * the request's `Secure; SameSite=None` cookie on http://localhost and sends it with that POST;
 * a response posted into another browser is refused.
 */
let ctx: AppContext;
let server: RunningServer;
let idpServer: http.Server;
let idpUrl: string;
let publicUrl: string;
let keys: IdpKeys;
let chromium: HeadlessChromium;
/** The IdP's answer to the last AuthnRequest, and whether its page posts it straight away. */
let lastAnswer = '';
let autoPost = true;

const freePort = async () => {
  const probe = http.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => probe.once('listening', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
};

const postForm = (acsUrl: string, samlResponse: string, submit: boolean) =>
  `<!doctype html><title>IdP</title><form method="post" action="${acsUrl}"><input type="hidden" name="SAMLResponse" value="${samlResponse}"></form>` +
  (submit ? '<script>document.forms[0].submit()</script>' : '');

beforeAll(async () => {
  const port = await freePort();
  publicUrl = `http://localhost:${port}`;
  ctx = await createTestContext({ PUBLIC_URL: publicUrl, PORT: String(port), HOST: '127.0.0.1' });
  const { adminKey } = await createTestOrganization(ctx, 'demo');
  keys = makeIdpKeys('chromium-idp');
  const acsUrl = `${publicUrl}/saml/demo/acs`;

  // The IdP: answers an AuthnRequest with a response signed by the test IdP in the auto-post form, and at /csrf
  // serves the last answer to whoever visits (an attacker's page).
  idpServer = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://idp');
    res.setHeader('content-type', 'text/html');
    if (url.pathname === '/sso') {
      const { id } = authnRequestOf(`http://idp${req.url}`);
      const xml = responseXml({
        acsUrl,
        audience: `${publicUrl}/saml/demo/metadata`,
        nameId: 'owner@demo.test',
        inResponseTo: id,
        issuer: `${idpUrl}/metadata`,
      });
      lastAnswer = encode(signAssertion(xml, keys));
      res.end(postForm(acsUrl, lastAnswer, autoPost));
    } else if (url.pathname === '/csrf') {
      res.end(postForm(acsUrl, lastAnswer, true));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => idpServer.listen(0, '127.0.0.1', resolve));
  idpUrl = `http://127.0.0.1:${(idpServer.address() as AddressInfo).port}`;

  server = await startServer(ctx);
  await request(server.server)
    .post('/api/saml/connections')
    .set('authorization', `Bearer ${adminKey}`)
    .send({ name: 'Local IdP', metadataXml: idpMetadataXml([keys.certificate], `${idpUrl}/metadata`, `${idpUrl}/sso`) })
    .expect(201);
  chromium = await launchChromium();
});

afterAll(async () => {
  await chromium?.close();
  await new Promise((resolve) => (idpServer ? idpServer.close(resolve) : resolve(undefined)));
  await server?.shutdown('test done');
});

const attempts = () =>
  ctx.sql<
    { outcome: string; reason: string | null }[]
  >`select outcome, reason from saml_attempts order by id desc limit 1`;

describe('SP-initiated sign-in in Chromium over http://localhost with a cross-site IdP', () => {
  it('carries the request cookie through the IdP, signs in, and drops it', async () => {
    const page = await chromium.context.newPage();
    try {
      // The Cookie header as sent (allHeaders: the network layer adds cookies).
      const acsRequests: Promise<string>[] = [];
      const landingRequests: Promise<string>[] = [];
      page.on('request', (r) => {
        if (r.url().endsWith('/saml/demo/acs')) acsRequests.push(r.allHeaders().then((h) => h.cookie ?? ''));
        if (new URL(r.url()).pathname === '/welcome') landingRequests.push(r.allHeaders().then((h) => h.cookie ?? ''));
      });
      autoPost = false;
      await page.goto(`${publicUrl}/saml/demo/login?returnTo=/welcome`);
      expect(page.url()).toMatch(new RegExp(`^${idpUrl}/sso\\?SAMLRequest=`));
      const stored = (await chromium.context.cookies()).filter((c) => c.name.startsWith('orgsync_saml'));
      expect(stored.map((c) => [c.name.split('-')[0], c.path, c.httpOnly, c.secure, c.sameSite]).sort()).toEqual([
        ['orgsync_saml', '/saml/demo/acs', true, true, 'None'],
        ['orgsync_saml_lax', '/saml/demo/acs', true, false, 'Lax'],
      ]);

      await Promise.all([page.waitForURL(/\/welcome$/), page.evaluate(() => document.forms[0]!.submit())]);
      expect(await attempts()).toEqual([{ outcome: 'success', reason: 'member' }]);
      // The cross-site POST carried the SameSite=None cookie (not the Lax one).
      expect(acsRequests).toHaveLength(1);
      const sent = await acsRequests[0]!;
      expect(sent).toMatch(/orgsync_saml-_[0-9a-f-]+=/);
      expect(sent).not.toMatch(/orgsync_saml_lax-/);
      const after = await chromium.context.cookies();
      expect(after.filter((c) => c.name.startsWith('orgsync_saml'))).toEqual([]);
      const session = after.find((c) => c.name === 'orgsync_session');
      expect(session?.sameSite).toBe('Strict');
      // SameSite=Strict: the redirect from the IdP's cross-site POST lands without the session
      // (the chain began on another site) ...
      expect(landingRequests).toHaveLength(1);
      expect(await landingRequests[0]!).not.toMatch(/orgsync_session=/);
      // ... while the landing page's own calls and any later navigation carry it.
      const me = await page.evaluate(async () => (await fetch('/saml/me')).status);
      expect(me).toBe(200);
      const later = await page.goto(`${publicUrl}/saml/me`);
      expect(later?.status()).toBe(200);
    } finally {
      await page.close();
      await chromium.context.clearCookies();
    }
  });

  it('refuses the answer an attacker got for their own login when posted into another browser', async () => {
    // Another browser (its own profile) for the attacker.
    const attacker = await launchChromium();
    const victim = await chromium.context.newPage();
    try {
      autoPost = false;
      const attackerPage = await attacker.context.newPage();
      await attackerPage.goto(`${publicUrl}/saml/demo/login`);
      expect(attackerPage.url()).toMatch(new RegExp(`^${idpUrl}/sso\\?SAMLRequest=`));

      await victim.goto(`${idpUrl}/csrf`);
      await victim.waitForURL(/\/saml\/demo\/acs$/);
      expect(await victim.locator('[data-reason]').getAttribute('data-reason')).toBe('request_not_from_this_browser');
      expect(await attempts()).toEqual([{ outcome: 'refused', reason: 'request_not_from_this_browser' }]);
      expect((await chromium.context.cookies()).map((c) => c.name)).not.toContain('orgsync_session');
    } finally {
      await victim.close();
      await attacker.close();
      await chromium.context.clearCookies();
    }
  });
});
