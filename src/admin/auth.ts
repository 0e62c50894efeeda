import { asyncHandler } from '../http/async-handler.ts';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { AppContext } from '../context.ts';
import { getAccount } from '../core/accounts.ts';
import type { Actor } from '../core/actor.ts';
import { verifyCredential } from '../core/credentials.ts';
import { effectivePermissions } from '../core/memberships.ts';
import type { Permission } from '../core/permissions.ts';
import { permissionsOf } from '../core/roles.ts';
import { resolveSession } from '../core/sessions.ts';
import { crossSiteReason } from '../http/csrf.ts';
import { readSessionCookie } from '../http/session-cookie.ts';

/**
 * Who is calling the admin API: always exactly one organization, with that caller's permissions.
 * The actor carries them too, so the core limits what the caller may grant or take away.
 */
export interface Principal {
  organizationId: string;
  actor: Actor;
  permissions: Permission[];
  /** Set when the caller is a signed-in member (not an API key). */
  accountId?: string;
}

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
  }
}

/**
 * Authenticates an admin API call: `Authorization: Bearer <admin API key>` or the session cookie
 * of a signed-in member. Either way the caller is bound to one organization; every route works
 * on that organization only. A state-changing call on the cookie must come from orgsync's own
 * pages (see crossSiteReason); a Bearer key is not sent by the browser by itself and needs no check.
 */
export function authenticate(ctx: AppContext): RequestHandler {
  return asyncHandler(async (req, res, next) => {
    try {
      const crossSite = req.get('authorization') ? null : crossSiteReason(req, ctx.config.publicUrl);
      if (crossSite && readSessionCookie(req)) {
        res.status(403).json({ error: 'cross_site_request', message: `request refused: ${crossSite}` });
        return;
      }
      const principal = await principalOf(ctx, req);
      if (!principal) {
        res.setHeader('www-authenticate', 'Bearer realm="orgsync"');
        res
          .status(401)
          .json({ error: 'unauthenticated', message: 'send an admin API key as a Bearer token, or sign in' });
        return;
      }
      req.principal = principal;
      next();
    } catch (error) {
      next(error);
    }
  });
}

async function principalOf(ctx: AppContext, req: Request): Promise<Principal | null> {
  const header = req.get('authorization');
  if (header) {
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) return null;
    const key = await verifyCredential(ctx.sql, ctx.config.serverSecret, 'admin', match[1]!);
    if (!key) return null;
    const permissions = await permissionsOf(ctx.sql, key.organizationId, key.roles);
    return {
      organizationId: key.organizationId,
      actor: { type: 'admin_key', id: key.id, name: key.name, channel: 'admin', permissions },
      permissions,
    };
  }
  const cookie = readSessionCookie(req);
  if (!cookie) return null;
  const resolved = await resolveSession(ctx.sql, ctx.config.serverSecret, cookie);
  if (!resolved) return null;
  const { session, membership } = resolved;
  const account = await getAccount(ctx.sql, session.accountId);
  const permissions = await effectivePermissions(ctx.sql, membership);
  return {
    organizationId: session.organizationId,
    accountId: session.accountId,
    actor: {
      type: 'account',
      id: session.accountId,
      name: account?.email ?? session.accountId,
      channel: 'admin',
      permissions,
    },
    permissions,
  };
}

/** 403 naming the missing permission unless the caller has all of `needed`. */
export function requirePermission(...needed: Permission[]): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const missing = needed.filter((p) => !req.principal?.permissions.includes(p));
    if (missing.length > 0) {
      res
        .status(403)
        .json({ error: 'forbidden', message: `missing permission: ${missing.join(', ')}`, details: { missing } });
      return;
    }
    next();
  };
}
