import crypto from 'node:crypto';
import type { CookieOptions, Request, Response } from 'express';
import { hashSecret } from '../core/secrets.ts';
import { REQUEST_TTL_SECONDS } from './one-time.ts';

/**
 * Login CSRF / session fixation defence: an SP-initiated AuthnRequest is answered only in the
 * browser that started it. /saml/{org}/login gives that browser a random cookie named after the
 * request id (one per request, so logins started in several tabs each keep theirs); the request
 * row keeps only the cookie's keyed hash. An attacker who starts a login, completes it at the IdP
 * as themselves and posts the response into a victim's browser is refused: the victim's browser
 * holds no cookie for the attacker's request.
 *
 * The IdP's POST to the ACS is a cross-site navigation, which carries only SameSite=None cookies,
 * and browsers keep those only when Secure. Under https the cookie is `Secure; SameSite=None`.
 * Over plain http the same cookie is set too (Chromium keeps Secure cookies from http://localhost
 * and 127.0.0.1 and sends them on a cross-site POST, so the local demo works with any IdP: see
 * test/saml/chromium.e2e.test.ts), plus a `SameSite=Lax` copy for browsers and hosts where a
 * Secure cookie over http is dropped: that one reaches the ACS only from an IdP on the same site.
 */
const COOKIE_PREFIX = 'orgsync_saml-';
const LAX_COOKIE_PREFIX = 'orgsync_saml_lax-';

/** Request ids (samlify's `_` + UUID) that can name a cookie. */
const COOKIE_SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;

interface BindingCookie {
  name: string;
  options: CookieOptions;
}

function bindingCookies(requestId: string, acsUrl: string): BindingCookie[] {
  const acs = new URL(acsUrl);
  const base = { httpOnly: true, path: acs.pathname };
  const cookies: BindingCookie[] = [
    { name: COOKIE_PREFIX + requestId, options: { ...base, secure: true, sameSite: 'none' } },
  ];
  if (acs.protocol !== 'https:')
    cookies.push({ name: LAX_COOKIE_PREFIX + requestId, options: { ...base, secure: false, sameSite: 'lax' } });
  return cookies;
}

/** At login: a new binding secret for the request, set as its cookie(s); answers the hash to store. */
export function bindRequestToBrowser(res: Response, requestId: string, acsUrl: string, serverSecret: string): string {
  if (!COOKIE_SAFE_ID.test(requestId))
    throw new Error(`AuthnRequest id ${JSON.stringify(requestId)} cannot name a cookie`);
  const secret = crypto.randomBytes(32).toString('base64url');
  for (const cookie of bindingCookies(requestId, acsUrl)) {
    res.cookie(cookie.name, secret, { ...cookie.options, maxAge: REQUEST_TTL_SECONDS * 1000 });
  }
  return hashSecret(secret, serverSecret);
}

/** The binding secrets this browser presents for the request (none, or one per cookie sent). */
export function presentedBindings(req: Request, requestId: string): string[] {
  if (!COOKIE_SAFE_ID.test(requestId)) return [];
  const names = new Set([COOKIE_PREFIX + requestId, LAX_COOKIE_PREFIX + requestId]);
  const values: string[] = [];
  for (const part of (req.get('cookie') ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && names.has(part.slice(0, at).trim())) values.push(part.slice(at + 1).trim());
  }
  return values;
}

/** True when one of the presented secrets is the one the request was bound to. */
export function isBoundToThisBrowser(storedHash: string | null, presented: string[], serverSecret: string): boolean {
  if (!storedHash) return false;
  const expected = Buffer.from(storedHash);
  return presented.some((secret) => {
    const actual = Buffer.from(hashSecret(secret, serverSecret));
    return actual.length === expected.length && crypto.timingSafeEqual(actual, expected);
  });
}

/** After the ACS used them: the browser drops the request's cookie(s). */
export function clearRequestBinding(res: Response, requestId: string, acsUrl: string): void {
  if (!COOKIE_SAFE_ID.test(requestId)) return;
  for (const cookie of bindingCookies(requestId, acsUrl)) res.clearCookie(cookie.name, cookie.options);
}
