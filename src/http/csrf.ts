import type { Request } from 'express';

/**
 * A header the console sends with every admin API call. A cross-site page cannot send it: a form
 * cannot set headers, and fetch with a custom header needs a CORS preflight orgsync never grants.
 */
export const CSRF_HEADER = 'x-orgsync-csrf';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Why a state-changing request that a browser authenticates by itself (the session cookie, an
 * invitation form) is not from orgsync's own pages, or null when it is (or changes nothing).
 * SameSite alone is not enough: a Lax cookie goes with a top-level cross-site POST in older
 * browsers, and a same-site attacker (another subdomain) is not cross-site at all. Accepted: the
 * custom header, `Sec-Fetch-Site: same-origin`, or an Origin equal to `PUBLIC_URL`'s or the
 * request's own. A request showing none of them (no browser omits all) is refused too.
 */
export function crossSiteReason(req: Request, publicUrl: string): string | null {
  if (SAFE_METHODS.has(req.method)) return null;
  if (req.get(CSRF_HEADER) !== undefined) return null;
  const site = req.get('sec-fetch-site');
  if (site !== undefined)
    return site === 'same-origin' ? null : `it was sent from another site (Sec-Fetch-Site: ${site})`;
  const origin = req.get('origin');
  if (origin !== undefined && origin !== 'null') {
    const own = [new URL(publicUrl).origin, `${req.protocol}://${req.get('host') ?? ''}`];
    return own.includes(origin) ? null : `it was sent from another site (Origin: ${origin})`;
  }
  return `it carries no Origin or Sec-Fetch-Site from orgsync, nor the ${CSRF_HEADER} header`;
}
