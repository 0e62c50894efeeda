import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { hashSecret } from '../../src/core/secrets.ts';
import { responseXml, signAssertion, type ResponseOptions } from './support/idp.ts';
import {
  CookieJar,
  lastAttempt,
  postResponse,
  samlFixture,
  sessionCookieOf,
  startLogin,
  type SamlFixture,
} from './support/setup.ts';

/**
 * Login CSRF: an answer to an SP-initiated AuthnRequest is accepted only from the browser that
 * started the request, which /saml/{org}/login gave a cookie. Each CookieJar is a browser.
 */
let f: SamlFixture;
beforeAll(async () => {
  f = await samlFixture();
});
afterAll(async () => f.ctx.database.close());

const signed = (over: Partial<ResponseOptions> = {}) =>
  signAssertion(responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: 'owner@acme.test', ...over }), f.idp);

const bindingCookies = (jar: CookieJar) => jar.named('orgsync_saml');

/** The Set-Cookie headers of a response that name the request's binding cookie. */
const bindingHeaders = (res: { headers: Record<string, unknown> }, requestId: string) =>
  ((res.headers['set-cookie'] as string[] | undefined) ?? []).filter((c) => c.includes(`-${requestId}=`));

async function expectNotFromThisBrowser(res: Awaited<ReturnType<typeof postResponse>>, detail: RegExp) {
  expect(res.status, res.text.slice(0, 300)).toBe(403);
  expect(res.text).toContain('data-reason="request_not_from_this_browser"');
  expect(res.text).toMatch(/not started in this browser/);
  expect(sessionCookieOf(res)).toBeUndefined();
  const attempt = await lastAttempt(f);
  expect(attempt).toMatchObject({
    outcome: 'refused',
    reason: 'request_not_from_this_browser',
    nameId: 'owner@acme.test',
  });
  expect(attempt!.message).toMatch(detail);
  const [audit] = await f.ctx.sql<{ action: string; details: { reason: string; message: string } }[]>`
    select action, details from audit_log where organization_id = ${f.organization.id} order by id desc limit 1`;
  expect(audit).toMatchObject({
    action: 'sso.refused',
    details: { reason: 'request_not_from_this_browser', message: attempt!.message },
  });
}

describe('the cookie /saml/{org}/login sets', () => {
  it('is random, HttpOnly, Secure, SameSite=None, for the ACS only, and lives as long as the request', async () => {
    const requestId = await startLogin(f);
    const [cookie, ...others] = bindingCookies(f.browser).filter((c) => c.name.endsWith(requestId));
    expect(others).toEqual([]); // under https, no SameSite=Lax copy
    expect(cookie!.name).toBe(`orgsync_saml-${requestId}`);
    expect(cookie!.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(cookie!.path).toBe('/saml/acme/acs');
    expect(cookie!.attributes).toMatch(/(^|; )Max-Age=900(;|$)/);
    expect(cookie!.attributes).toMatch(/(^|; )HttpOnly(;|$)/);
    expect(cookie!.attributes).toMatch(/(^|; )Secure(;|$)/);
    expect(cookie!.attributes).toMatch(/(^|; )SameSite=None(;|$)/);
    // Only its keyed hash is stored with the request.
    const [row] = await f.ctx.sql<{ browserBindingHash: string }[]>`
      select browser_binding_hash from saml_requests where organization_id = ${f.organization.id} and id = ${requestId}`;
    expect(row!.browserBindingHash).toBe(hashSecret(cookie!.value, f.ctx.config.serverSecret));
    expect(row!.browserBindingHash).not.toContain(cookie!.value);
  });
});

describe('an answer to an SP-initiated request', () => {
  it('signs in the browser that started it, which then drops the cookie', async () => {
    const requestId = await startLogin(f, '/started-here');
    const res = await postResponse(f, signed({ inResponseTo: requestId }));
    expect(res.status, res.text).toBe(303);
    expect(res.headers.location).toBe('https://orgsync.test/started-here');
    expect(sessionCookieOf(res)).toBeDefined();
    const [cleared, ...more] = bindingHeaders(res, requestId);
    expect(more).toEqual([]);
    expect(cleared).toMatch(
      new RegExp(
        `^orgsync_saml-${requestId}=; Path=/saml/acme/acs; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=None$`,
      ),
    );
    expect(bindingCookies(f.browser).filter((c) => c.name.endsWith(requestId))).toEqual([]);
  });

  it("is refused in another browser (a login started by an attacker, posted into the victim's browser)", async () => {
    const attacker = new CookieJar();
    const victim = new CookieJar();
    const requestId = await startLogin(f, '/app', attacker);
    const warn = vi.spyOn(f.ctx.log, 'warn');
    try {
      const res = await postResponse(f, signed({ inResponseTo: requestId }), undefined, victim);
      await expectNotFromThisBrowser(res, /holds no sign-in cookie for that request/);
      expect(warn).toHaveBeenCalledWith(
        expect.objectContaining({ reason: 'request_not_from_this_browser' }),
        'SAML sign-in refused',
      );
    } finally {
      warn.mockRestore();
    }
    expect(victim.named('orgsync_session')).toEqual([]);
    // Refused before it was consumed: the attacker's own request is still theirs alone.
    expect(bindingCookies(attacker)).toHaveLength(1);
    const [pending] = await f.ctx
      .sql`select 1 from saml_requests where organization_id = ${f.organization.id} and id = ${requestId}`;
    expect(pending).toBeDefined();
  });

  it("is refused when the browser's cookie for the request does not match", async () => {
    const requestId = await startLogin(f);
    const planted = new CookieJar();
    planted.cookies.set(`orgsync_saml-${requestId} /saml/acme/acs`, {
      value: 'A'.repeat(43),
      path: '/saml/acme/acs',
      attributes: '',
    });
    const res = await postResponse(f, signed({ inResponseTo: requestId }), undefined, planted);
    await expectNotFromThisBrowser(res, /its sign-in cookie for that request does not match/);
    expect(bindingHeaders(res, requestId)).toEqual([]); // not used: not cleared
    // The browser that started it still can.
    expect((await postResponse(f, signed({ inResponseTo: requestId }))).status).toBe(303);
  });

  it('is refused for a request pending from before requests were bound to browsers', async () => {
    const requestId = await startLogin(f);
    await f.ctx
      .sql`update saml_requests set browser_binding_hash = null where organization_id = ${f.organization.id} and id = ${requestId}`;
    await expectNotFromThisBrowser(await postResponse(f, signed({ inResponseTo: requestId })), /does not match/);
  });

  it('keeps logins started in parallel tabs apart, each answered in any order', async () => {
    const first = await startLogin(f, '/tab-one');
    const second = await startLogin(f, '/tab-two');
    expect(bindingCookies(f.browser).map((c) => c.name)).toEqual(
      expect.arrayContaining([`orgsync_saml-${first}`, `orgsync_saml-${second}`]),
    );
    const two = await postResponse(f, signed({ inResponseTo: second }));
    expect(two.status, two.text).toBe(303);
    expect(two.headers.location).toBe('https://orgsync.test/tab-two');
    const one = await postResponse(f, signed({ inResponseTo: first }));
    expect(one.status, one.text).toBe(303);
    expect(one.headers.location).toBe('https://orgsync.test/tab-one');
    expect(bindingCookies(f.browser).filter((c) => c.name.endsWith(first) || c.name.endsWith(second))).toEqual([]);
  });

  it('drops the cookie once used even when the sign-in is then refused', async () => {
    const requestId = await startLogin(f);
    const res = await postResponse(
      f,
      signed({
        inResponseTo: requestId,
        nameId: 'stranger@elsewhere.example',
        attributes: { email: ['stranger@elsewhere.example'] },
      }),
    );
    expect(res.status).toBe(403);
    expect(res.text).toContain('data-reason="not_allowed_to_join"');
    expect(bindingHeaders(res, requestId)).toHaveLength(1);
    expect(bindingCookies(f.browser).filter((c) => c.name.endsWith(requestId))).toEqual([]);
  });
});

describe('an IdP-initiated response (no InResponseTo)', () => {
  it('needs no cookie', async () => {
    const res = await postResponse(f, signed(), '/from-the-idp', new CookieJar());
    expect(res.status, res.text).toBe(303);
    expect(res.headers.location).toBe('https://orgsync.test/from-the-idp');
  });
});

describe('over plain http (the local demo)', () => {
  let local: SamlFixture;
  beforeAll(async () => {
    local = await samlFixture('demo', {}, { PUBLIC_URL: 'http://localhost:3000' });
  });
  afterAll(async () => local?.ctx.database.close());

  it('sets the Secure SameSite=None cookie (kept on localhost) and a SameSite=Lax copy; either one signs in', async () => {
    const requestId = await startLogin(local);
    const cookies = bindingCookies(local.browser);
    expect(cookies.map((c) => c.name).sort()).toEqual([`orgsync_saml-${requestId}`, `orgsync_saml_lax-${requestId}`]);
    const none = cookies.find((c) => c.name.startsWith('orgsync_saml-'))!;
    const lax = cookies.find((c) => c.name.startsWith('orgsync_saml_lax-'))!;
    expect(none.attributes).toMatch(/Path=\/saml\/demo\/acs; .*HttpOnly; Secure; SameSite=None$/);
    expect(lax.attributes).toMatch(/Path=\/saml\/demo\/acs; .*HttpOnly; SameSite=Lax$/);
    expect(lax.value).toBe(none.value);

    const signedFor = (id: string) =>
      signAssertion(
        responseXml({ acsUrl: local.acsUrl, audience: local.audience, nameId: 'owner@demo.test', inResponseTo: id }),
        local.idp,
      );
    // A cross-site IdP's POST carries only the SameSite=None one (Chromium, Firefox on localhost) ...
    local.browser.cookies.delete(`${lax.name} ${lax.path}`);
    const crossSite = await postResponse(local, signedFor(requestId));
    expect(crossSite.status, crossSite.text).toBe(303);
    expect(bindingHeaders(crossSite, requestId)).toHaveLength(2);
    // ... and where a Secure cookie over http is dropped, a same-site IdP's POST carries the Lax one.
    const second = await startLogin(local);
    local.browser.cookies.delete(`orgsync_saml-${second} /saml/demo/acs`);
    const sameSite = await postResponse(local, signedFor(second));
    expect(sameSite.status, sameSite.text).toBe(303);
    expect(bindingCookies(local.browser)).toEqual([]);
  });
});
