import { asyncHandler } from './http/async-handler.ts';
import express, { type ErrorRequestHandler, type Request, type RequestHandler } from 'express';
import type { AppContext } from './context.ts';
import { invitationPages } from './admin/invitation-pages.ts';
import { adminRouter } from './admin/router.ts';
import { consoleRouter } from './console/router.ts';
import { ACS_PATH, samlRouter } from './saml/router.ts';
import { scimRouter } from './scim/router.ts';
import { accessLog } from './http/access-log.ts';
import { requestId } from './http/request-id.ts';
import { parseByteSize } from './http/byte-size.ts';
import { metricsRoute } from './metrics-endpoint.ts';
import { httpMetrics } from './http/request-metrics.ts';
import { retryAfterOnUnavailable, sendDomainError, sendUnavailable } from './http/errors.ts';

/** The whole HTTP surface: health probes, then one router per edge adapter. */
export function createApp(ctx: AppContext): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // No conditional GETs are served, so hashing every response body for an ETag is wasted work.
  app.set('etag', false);
  // Query strings are flat (SCIM's filter, startIndex; the admin API's flat parameters): node's
  // own parser reads them for a quarter of what qs's nested one costs on every request.
  app.set('query parser', 'simple');
  app.set('trust proxy', ctx.config.trustProxy);

  // SCIM first: its exchange (scim/exchange.ts) does for it what the middlewares below do for the
  // rest, in one pass, so an IdP's requests pass through nothing they do not use.
  app.use('/scim/v2', scimRouter(ctx));
  app.use(requestId);
  app.use(retryAfterOnUnavailable);
  const bodyLimit = parseByteSize(ctx.config.bodyLimit);
  app.use(rejectOversizedBodies(bodyLimit, readsItsOwnBody));
  app.use(accessLog(ctx.log));
  app.use(httpMetrics);
  if (ctx.config.metrics.token) app.get('/metrics', metricsRoute(ctx, ctx.config.metrics.token));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get(
    '/readyz',
    asyncHandler(async (_req, res) => {
      try {
        await withTimeout(ctx.sql`select 1`, 2_000);
        res.json({ status: 'ok', database: ctx.database.kind });
      } catch (error) {
        ctx.log.warn({ err: error }, 'readiness check failed');
        res.status(503).json({ status: 'unavailable', reason: 'database unreachable' });
      }
    }),
  );

  app.use('/saml', samlRouter(ctx, bodyLimit));
  app.use('/api', adminRouter(ctx));
  app.use('/invitations', invitationPages(ctx));
  app.use('/console', consoleRouter(ctx));
  // A person who opens the service's address in a browser wants the console.
  app.get('/', (_req, res) => res.redirect(302, '/console'));

  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found', message: 'no such endpoint' });
  });
  app.use(lastResortErrorHandler(ctx));
  return app;
}

/**
 * Routers that bound their bodies themselves, with the same limit, and answer in their own shape:
 * the admin API authenticates first (an unknown caller gets 401 whatever it sends) and answers
 * 413 in its error shape (the SCIM server, mounted ahead of this, does the same); an oversized SAML message to the ACS is a sign-in
 * refusal, logged and explained on the SSO error page.
 */
function readsItsOwnBody(req: Request): boolean {
  return /^\/api(\/|$)/i.test(req.path) || (req.method === 'POST' && ACS_PATH.test(req.path));
}

/**
 * Refuses a declared body above the limit before any router reads it; parsers bound chunked ones.
 * Either way the connection closes after the answer rather than reading the body to its end.
 */
function rejectOversizedBodies(limit: number, readsOwnBody: (req: Request) => boolean): RequestHandler {
  return (req, res, next) => {
    const length = Number(req.get('content-length') ?? 0);
    if (length <= limit) return next();
    res.setHeader('connection', 'close');
    if (readsOwnBody(req)) return next();
    res.status(413).json({ error: 'payload_too_large', message: `request body exceeds ${limit} bytes` });
  };
}

function lastResortErrorHandler(ctx: AppContext): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) return next(error);
    const logConflict = (err: unknown) => ctx.log.error({ err, reqId: req.id }, 'request rolled back by a conflict');
    if (sendDomainError(res, error) || sendUnavailable(res, error, logConflict)) return;
    // body-parser's errors carry their HTTP status; anything else is a bug.
    const { status: claimed, message: detail } = (error ?? {}) as { status?: unknown; message?: unknown };
    const status = typeof claimed === 'number' && claimed >= 400 && claimed < 500 ? claimed : 500;
    if (status === 500) ctx.log.error({ err: error, reqId: req.id }, 'unhandled error');
    const message =
      status === 413
        ? 'request body too large'
        : status === 500
          ? 'internal error'
          : typeof detail === 'string'
            ? detail
            : 'bad request';
    res
      .status(status)
      .json({ error: status === 500 ? 'internal' : status === 413 ? 'payload_too_large' : 'bad_request', message });
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
