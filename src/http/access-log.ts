import { performance } from 'node:perf_hooks';
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from '../log.ts';

/**
 * One structured line per request, with its request id: errors at `error`, client errors at
 * `warn`, the rest at `info`. Costs nothing beyond a timer when that level is off (pino-http
 * made a child logger per request, a tenth of a SCIM lookup's CPU). The path is logged without
 * its query string: SCIM filters name people, and an invitation link carries its token.
 */
export function accessLog(log: Logger): RequestHandler {
  return (req, res, next) => {
    if (req.path === '/healthz' || req.path === '/readyz') return next();
    const started = performance.now();
    res.on('finish', () => logRequest(log, req, res, performance.now() - started));
    next();
  };
}

/** The access log's line for an answered request that took `ms`. */
export function logRequest(log: Logger, req: Request, res: Response, ms: number): void {
  const level = res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info';
  if (!log.isLevelEnabled(level)) return;
  log[level](
    {
      reqId: req.id,
      method: req.method,
      path: req.originalUrl.split('?', 1)[0],
      status: res.statusCode,
      ms: Math.round(ms),
    },
    'request completed',
  );
}
