import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeIdpKeys, type IdpKeys } from '../saml/support/idp.ts';
import { CookieJar } from '../saml/support/setup.ts';
import { createApp } from '../../src/app.ts';
import type { AppContext } from '../../src/context.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

/**
 * A full SP-initiated round trip through a real, independent IdP implementation: pysaml2 (Debian's
 * python3-pysaml2) runs as an HTTP IdP on 127.0.0.1. The test plays the browser: it follows the
 * redirect to the IdP and submits the IdP's auto-post form to orgsync's ACS, with the cookie
 * orgsync's login URL gave it.
 */
let ctx: AppContext;
let app: ReturnType<typeof createApp>;
let adminKey: string;
let keys: IdpKeys;
let idp: ChildProcessWithoutNullStreams;
let idpInfo: { port: number; entityId: string; metadata: string };

beforeAll(async () => {
  ctx = await createTestContext();
  ({ adminKey } = await createTestOrganization(ctx, 'initech'));
  app = createApp(ctx);
  keys = makeIdpKeys('pysaml2-idp');
  const spMetadata = (await request(app).get('/saml/initech/metadata').expect(200)).text;
  const spMetadataFile = path.join(keys.dir, 'sp.xml');
  fs.writeFileSync(spMetadataFile, spMetadata);
  const user = {
    email: 'owner@initech.test',
    attributes: { mail: ['owner@initech.test'], givenName: ['Olive'], sn: ['Owner'], groups: ['Ops'] },
  };
  idp = spawn('/usr/bin/python3', [
    path.join(import.meta.dirname, 'pysaml2_idp.py'),
    keys.dir,
    spMetadataFile,
    keys.keyFile,
    keys.certFile,
    JSON.stringify(user),
  ]);
  let stderr = '';
  idp.stderr.on('data', (chunk) => (stderr += chunk));
  const firstLine = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: idp.stdout }).once('line', resolve);
    idp.once('exit', (code) => reject(new Error(`pysaml2 IdP exited (${code}): ${stderr}`)));
  });
  idpInfo = JSON.parse(firstLine);
});

afterAll(async () => {
  if (idp && idp.exitCode === null) {
    const exited = new Promise((resolve) => idp.once('exit', resolve));
    idp.stdin.end();
    idp.kill('SIGTERM');
    await exited;
  }
  await ctx?.database.close();
});

/** The browser: starts a login (keeping its cookies) and answers the IdP URL it is sent to. */
async function startLogin(browser: CookieJar, returnTo: string): Promise<URL> {
  const login = await request(app).get('/saml/initech/login').query({ returnTo }).expect(302);
  browser.store(login);
  return new URL(login.headers.location!);
}

/** The browser submits the IdP's form to the ACS, with its cookies for the ACS. */
async function postToAcs(browser: CookieJar, action: string, samlResponse: string) {
  const path = new URL(action).pathname;
  const res = await request(app)
    .post(path)
    .set('cookie', browser.header(path))
    .type('form')
    .send({ SAMLResponse: samlResponse });
  browser.store(res);
  return res;
}

async function idpForm(location: URL) {
  const atIdp = await fetch(location);
  const form = await atIdp.text();
  expect(atIdp.status, form).toBe(200);
  return {
    action: /action="([^"]+)"/.exec(form)![1]!,
    samlResponse: /name="SAMLResponse" value="([^"]+)"/.exec(form)![1]!,
  };
}

describe('SP-initiated sign-in through pysaml2', () => {
  it('connects from the IdP metadata, signs in, and answers who is signed in', async () => {
    const connection = await request(app)
      .post('/api/saml/connections')
      .set('authorization', `Bearer ${adminKey}`)
      .send({ name: 'pysaml2', metadataXml: idpInfo.metadata })
      .expect(201);
    expect(connection.body).toMatchObject({
      idpEntityId: idpInfo.entityId,
      ssoUrl: `http://127.0.0.1:${idpInfo.port}/sso`,
    });

    // 1. The product sends the browser to orgsync's login URL; orgsync redirects to the IdP.
    const browser = new CookieJar();
    const location = await startLogin(browser, '/welcome');
    expect(browser.named('orgsync_saml-')).toHaveLength(1);
    expect(location.origin + location.pathname).toBe(`http://127.0.0.1:${idpInfo.port}/sso`);
    expect(location.searchParams.get('SigAlg')).toBe('http://www.w3.org/2001/04/xmldsig-more#rsa-sha256');

    // 2. The IdP (pysaml2) checks the request's signature and answers its auto-post form.
    const forged = new URL(location);
    forged.searchParams.set('Signature', Buffer.alloc(256, 1).toString('base64'));
    const refused = await fetch(forged);
    expect(refused.status).toBe(400);
    expect(await refused.text()).toMatch(/signature does not verify/);
    const { action, samlResponse } = await idpForm(location);
    expect(action).toBe('https://orgsync.test/saml/initech/acs');
    expect(Buffer.from(samlResponse, 'base64').toString()).toMatch(/InResponseTo="/);

    // 3. The browser posts the form to orgsync's ACS, with its cookie for the request (then dropped).
    const acs = await postToAcs(browser, action, samlResponse);
    expect(acs.status, acs.text).toBe(303);
    expect(acs.headers.location).toBe('https://orgsync.test/welcome');
    expect(browser.named('orgsync_saml-')).toEqual([]);
    const cookie = acs.headers['set-cookie']![0]!.split(';')[0]!;

    const me = await request(app).get('/saml/me').set('cookie', cookie).expect(200);
    expect(me.body).toMatchObject({
      account: { email: 'owner@initech.test' },
      organization: { slug: 'initech' },
      roles: ['owner'],
    });
    const groups = await ctx.sql`select display_name from groups where source = 'saml'`;
    expect(groups.map((g) => g.displayName)).toEqual(['Ops']);
    const attempts = await request(app)
      .get('/api/saml/attempts')
      .set('authorization', `Bearer ${adminKey}`)
      .expect(200);
    expect(attempts.body.items[0]).toMatchObject({
      outcome: 'success',
      nameId: 'owner@initech.test',
      idpEntityId: idpInfo.entityId,
    });

    // 4. The same IdP answer cannot be used twice.
    const again = await postToAcs(browser, action, samlResponse);
    expect(again.status).toBe(403);
    expect(again.text).toContain('data-reason="replayed_assertion"');
  });

  it('refuses the IdP answer posted into a browser that did not start the login (login CSRF)', async () => {
    const attacker = new CookieJar();
    const { action, samlResponse } = await idpForm(await startLogin(attacker, '/welcome'));
    const victim = new CookieJar();
    const acs = await postToAcs(victim, action, samlResponse);
    expect(acs.status).toBe(403);
    expect(acs.text).toContain('data-reason="request_not_from_this_browser"');
    expect(victim.named('orgsync_session')).toEqual([]);
    const attempts = await request(app)
      .get('/api/saml/attempts')
      .set('authorization', `Bearer ${adminKey}`)
      .expect(200);
    expect(attempts.body.items[0]).toMatchObject({
      outcome: 'refused',
      reason: 'request_not_from_this_browser',
      nameId: 'owner@initech.test',
    });
  });

  it.each([
    ['a signed assertion', false],
    ['a signed assertion inside a signed Response', true],
  ])('decrypts %s that pysaml2 encrypted for the SP key', async (_name, signResponse) => {
    const browser = new CookieJar();
    const location = await startLogin(browser, '/secret');
    location.searchParams.set('encrypt', '1');
    if (signResponse) location.searchParams.set('signResponse', '1');
    const { action, samlResponse } = await idpForm(location);
    const xml = Buffer.from(samlResponse, 'base64').toString();
    expect(xml).toContain('EncryptedAssertion');
    expect(xml).toContain('Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc"');
    expect(xml).not.toContain('tripledes-cbc');
    expect(xml).not.toContain('owner@initech.test');
    // A Signature before the EncryptedAssertion is the Response's own (the assertion's is encrypted).
    const responseSignature =
      xml.indexOf('Signature') !== -1 && xml.indexOf('Signature') < xml.indexOf('EncryptedAssertion');
    expect(responseSignature).toBe(signResponse);

    const acs = await postToAcs(browser, action, samlResponse);
    expect(acs.status, acs.text).toBe(303);
    expect(acs.headers.location).toBe('https://orgsync.test/secret');
    const attempts = await request(app)
      .get('/api/saml/attempts')
      .set('authorization', `Bearer ${adminKey}`)
      .expect(200);
    expect(attempts.body.items[0]).toMatchObject({ outcome: 'success', email: 'owner@initech.test' });
  });

  it('refuses an assertion encrypted as pysaml2 does by default (3DES content) as weak_algorithm', async () => {
    const browser = new CookieJar();
    const location = await startLogin(browser, '/secret');
    location.searchParams.set('encrypt', '3des');
    const { action, samlResponse } = await idpForm(location);
    expect(Buffer.from(samlResponse, 'base64').toString()).toContain(
      'Algorithm="http://www.w3.org/2001/04/xmlenc#tripledes-cbc"',
    );
    const acs = await postToAcs(browser, action, samlResponse);
    expect(acs.status).toBe(403);
    expect(acs.text).toContain('data-reason="weak_algorithm"');
    const attempts = await request(app)
      .get('/api/saml/attempts')
      .set('authorization', `Bearer ${adminKey}`)
      .expect(200);
    expect(attempts.body.items[0]).toMatchObject({ outcome: 'refused', reason: 'weak_algorithm' });
    expect(attempts.body.items[0].message).toContain(
      'content encryption algorithm not accepted: http://www.w3.org/2001/04/xmlenc#tripledes-cbc',
    );
  });
});
