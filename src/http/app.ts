import { asyncHandler } from './async-handler.ts';
import crypto from 'node:crypto';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import type { AppContext } from '../context.ts';
import { invitationPages } from '../admin/invitation-pages.ts';
import { adminRouter } from '../admin/router.ts';
import { consoleRouter } from '../console/router.ts';
import { ACS_PATH, samlRouter } from '../saml/router.ts';
import { scimRouter } from '../scim/router.ts';
import { accessLog } from './access-log.ts';
import { sendDomainError } from './errors.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

declare module 'express-serve-static-core' {
  interface Request {
    /** The request id: the caller's X-Request-Id when sane, else a new UUID; echoed in the response. */
    id: string;
  }
}

/** The whole HTTP surface: health probes, then one router per edge adapter. */
export function createApp(ctx: AppContext): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // No conditional GETs are served, so hashing every response body for an ETag is wasted work.
  app.set('etag', false);
  app.set('trust proxy', ctx.config.trustProxy);

  app.use(requestId);
  const bodyLimit = parseByteSize(ctx.config.bodyLimit);
  app.use(rejectOversizedBodies(bodyLimit, ACS_PATH));
  app.use(accessLog(ctx.log));

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

  app.use('/scim/v2', scimRouter(ctx));
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

const requestId: RequestHandler = (req, res, next) => {
  const given = req.get('x-request-id');
  const id = given && REQUEST_ID.test(given) ? given : crypto.randomUUID();
  req.id = id;
  res.setHeader('x-request-id', id);
  next();
};

/**
 * Refuses a declared body above the limit before any router reads it; parsers bound chunked ones.
 * POSTs to `except` (the SAML ACS) are left to their own parser, with the same limit: an oversized
 * SAML message is a sign-in refusal, logged and explained on the SSO error page.
 */
function rejectOversizedBodies(limit: number, except: RegExp): RequestHandler {
  return (req, res, next) => {
    const length = Number(req.get('content-length') ?? 0);
    if (length > limit && !(req.method === 'POST' && except.test(req.path))) {
      res.setHeader('connection', 'close');
      res.status(413).json({ error: 'payload_too_large', message: `request body exceeds ${limit} bytes` });
      return;
    }
    next();
  };
}

export function parseByteSize(size: string): number {
  const match = /^(\d+)(b|kb|mb)$/i.exec(size);
  if (!match) throw new Error(`not a byte size: ${size}`);
  const unit = { b: 1, kb: 1024, mb: 1024 * 1024 }[match[2]!.toLowerCase() as 'b' | 'kb' | 'mb'];
  return Number(match[1]) * unit;
}

function lastResortErrorHandler(ctx: AppContext): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) return next(error);
    if (sendDomainError(res, error)) return;
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
    res.status(status).json({ error: status === 500 ? 'internal' : 'bad_request', message });
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
