import { performance } from 'node:perf_hooks';
import type { Request, RequestHandler, Response } from 'express';
import { httpRequestDuration } from '../metrics.ts';

/**
 * Times every request under its route pattern (`/scim/v2/Users/:id`, never the path with its ids);
 * a request no route matched counts under its router's mount point (`/console/assets/*`) or `*`.
 * Every mount point is a literal path, so no value from the URL reaches a label.
 */
export const httpMetrics: RequestHandler = (req, res, next) => {
  const started = performance.now();
  res.on('finish', () => observeRequest(req, res, performance.now() - started));
  next();
};

/** Counts an answered request that took `ms` under its route (`route`: the pattern, when express did not route it). */
export function observeRequest(req: Request, res: Response, ms: number, route = routeLabel(req)): void {
  httpRequestDuration.observe({ method: req.method, route, status: String(res.statusCode) }, ms / 1000);
}

function routeLabel(req: Request): string {
  const route = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof route === 'string') return req.baseUrl + route;
  if (Array.isArray(route)) return req.baseUrl + route.join('|');
  return `${req.baseUrl}/*`;
}
