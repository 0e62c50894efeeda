import type { Request, Response } from 'express';
import type { AppContext } from '../context.ts';
import type { Actor } from '../core/actor.ts';
import { verifyCredential } from '../core/credentials.ts';
import { errorBody, type ScimError } from './errors.ts';

/** What every SCIM handler knows about its request: whose token it is, and so which organization. */
export interface ScimRequest {
  app: AppContext;
  organizationId: string;
  credentialId: string;
  actor: Actor;
  /** The resource the request touched, for the per-token request log. */
  touched?: { type: 'User' | 'Group'; id: string };
  /** The versions the request's If-Match names (undefined: none, or `*`); see etags.ts. */
  ifMatch?: readonly number[];
  /** The version of the one resource the answer is about, for its ETag header. */
  version?: number;
  /** What a handler scimmy-routers called failed with (router.ts `guard`), in case it cannot answer it. */
  failure?: ScimError;
}

type Handler<T> = (resource: { id?: string; attributes?: unknown }, ...rest: T[]) => Promise<unknown>;

/** The handlers scimmy calls for the routes it serves (GET one, PUT, DELETE, POST /Groups). */
export interface ScimmyHandlers {
  egress: Handler<ScimRequest>;
  /** Called with the validated instance, then the ScimRequest. */
  ingress: Handler<unknown>;
  degress: Handler<ScimRequest>;
}

declare module 'express-serve-static-core' {
  interface Request {
    scim?: ScimRequest;
  }
}

/**
 * `Authorization: Bearer <SCIM token>`. The token alone decides the organization: nothing in the
 * URL or body can point a request at another organization's data. Null: no valid token.
 */
export async function scimCaller(app: AppContext, authorization: string | undefined): Promise<ScimRequest | null> {
  const match = BEARER.exec(authorization ?? '');
  const token = match ? await verifyCredential(app.sql, app.config.serverSecret, 'scim', match[1]!) : null;
  if (!token) return null;
  return {
    app,
    organizationId: token.organizationId,
    credentialId: token.id,
    actor: { type: 'scim_token', id: token.id, name: token.name, channel: 'scim' },
  };
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The 401 of a request without a valid token. */
export function refuseUnauthenticated(req: Request, res: Response): void {
  res.setHeader('www-authenticate', 'Bearer realm="orgsync SCIM"');
  res.status(401).type('application/scim+json');
  res.send(
    errorBody({
      status: 401,
      message: BEARER.test(req.headers.authorization ?? '')
        ? 'the SCIM token is unknown, revoked or expired'
        : 'send a SCIM token as a Bearer token',
    }),
  );
}
