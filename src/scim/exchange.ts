import { performance } from 'node:perf_hooks';
import type { Request, RequestHandler, Response } from 'express';
import type { AppContext } from '../context.ts';
import { logRequest } from '../http/access-log.ts';
import { retryAfterIfUnavailable } from '../http/errors.ts';
import { assignRequestId } from '../http/request-id.ts';
import { observeRequest } from '../http/request-metrics.ts';
import { scimOperations, scimOutcome } from '../metrics.ts';
import { refuseUnauthenticated, scimCaller } from './auth.ts';
import { etagOf, ifMatchOf, noneMatchHits } from './etags.ts';
import { ownOperation, undecodableId, type OwnOperations } from './operations.ts';
import { refusedByRateLimit } from './rate-limit.ts';
import { scimErrorDetail, scimRequestLog, type RequestLogEntry } from './request-log.ts';

/**
 * The head of /scim/v2, which app.ts mounts ahead of the app-wide middlewares: everything a SCIM
 * request passes through, once. Its request id; as its answer goes out, the ETag of the resource
 * it is about, Retry-After on a 503, and one `finish` hook for the access log, the HTTP metric,
 * the SCIM operation count and the per-token request log. Then its caller: the token (401
 * without one), the token's rate limit (429), If-Match. orgsync's own operations (operations.ts)
 * are answered right here; the rest go on through the express router (router.ts).
 */
export function scimExchange(app: AppContext, operations: OwnOperations): RequestHandler {
  const requestLog = scimRequestLog(app);
  return (req, res, next) => {
    const own = ownOperation(operations, req);
    watchAnswer(app, req, res, requestLog, own?.route);
    // A body declared over the limit is refused; the connection is not reused after it.
    if (Number(req.headers['content-length'] ?? 0) > operations.bodyLimit) res.setHeader('connection', 'close');
    // Any failure (the database out of reach: 503) goes to the router's SCIM error handler.
    scimCaller(app, req.headers.authorization)
      .then(async (caller) => {
        if (!caller) return refuseUnauthenticated(req, res);
        req.scim = caller;
        const { scimRateLimit } = app.config;
        if (await refusedByRateLimit(app.sql, scimRateLimit, caller.credentialId, 1, res)) return;
        caller.ifMatch = ifMatchOf(req.method, req.headers['if-match']);
        if (own) await own.answer(req, res);
        else next(undecodableId(req) ?? undefined);
      })
      .catch(next);
  };
}

const RESOURCE = /^\/(Users|Groups|Bulk|Schemas|ResourceTypes|ServiceProviderConfig)\b/;

function watchAnswer(
  app: AppContext,
  req: Request,
  res: Response,
  requestLog: { record(entry: RequestLogEntry): void },
  route: string | undefined,
): void {
  const started = performance.now();
  const at = new Date();
  // Read now: by the time the answer has gone out, express may have moved on to another router.
  const resource = RESOURCE.exec(req.path)?.[1] ?? 'other';
  const routeLabel = route && `${req.baseUrl}${route}`;
  let errorDetail: string | null = null;
  assignRequestId(req, res);

  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => Response;
  res.writeHead = function (...args: unknown[]) {
    const status = typeof args[0] === 'number' ? args[0] : res.statusCode;
    retryAfterIfUnavailable(res, status);
    const version = req.scim?.version;
    if (version !== undefined && ((status >= 200 && status < 300) || status === 304))
      res.setHeader('ETag', etagOf(version));
    return writeHead(...args);
  } as Response['writeHead'];

  // An error answer's body is kept (as its SCIM detail) whichever part of the stack wrote it; a
  // GET whose If-None-Match names the version it answers gets 304 without a body.
  const send = res.send;
  res.send = function (this: Response, body?: unknown) {
    if (res.statusCode >= 400) errorDetail = scimErrorDetail(body);
    const version = req.scim?.version;
    if (req.method === 'GET' && res.statusCode === 200 && version !== undefined) {
      if (noneMatchHits(req.headers['if-none-match'], version)) return res.status(304).end();
    }
    return send.call(this, body);
  };

  res.on('finish', () => {
    const ms = performance.now() - started;
    logRequest(app.log, req, res, ms);
    observeRequest(req, res, ms, routeLabel);
    scimOperations.inc({ method: req.method, resource, outcome: scimOutcome(res.statusCode) });
    const scim = req.scim;
    if (!scim) return;
    requestLog.record({
      organizationId: scim.organizationId,
      credentialId: scim.credentialId,
      at,
      method: req.method,
      path: req.originalUrl.slice(0, 1000),
      status: res.statusCode,
      durationMs: ms,
      resourceType: scim.touched?.type ?? null,
      resourceId: scim.touched?.id ?? null,
      errorDetail,
    });
  });
}
