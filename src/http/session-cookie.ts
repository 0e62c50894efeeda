import type { Request, Response } from 'express';

/**
 * The signed-in member's session cookie: set after SSO or accepting an invitation. SameSite=Strict:
 * no other site's page, link or form can make the browser send it (README, "Signing in").
 */
export const SESSION_COOKIE = 'orgsync_session';

export function readSessionCookie(req: Request): string | null {
  for (const part of (req.get('cookie') ?? '').split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === SESSION_COOKIE) return decodeURIComponent(rest.join('='));
  }
  return null;
}

export function setSessionCookie(res: Response, secret: string, expiresAt: Date, secure: boolean): void {
  res.cookie(SESSION_COOKIE, secret, { httpOnly: true, secure, sameSite: 'strict', path: '/', expires: expiresAt });
}

export function clearSessionCookie(res: Response, secure: boolean): void {
  res.clearCookie(SESSION_COOKIE, { httpOnly: true, secure, sameSite: 'strict', path: '/' });
}
