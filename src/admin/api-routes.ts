import type { RequestHandler, Router } from 'express';
import type { z } from 'zod';
import type { Permission } from '../core/permissions.ts';
import { requirePermission } from './auth.ts';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/**
 * What the OpenAPI document says of a route, from the zod schemas the route itself uses: the query
 * and body it parses, and each success status with the schema of its answer (null: no body).
 */
export interface RouteDoc {
  summary: string;
  /** Checked before the handlers run (requirePermission) and named in the document. */
  permission?: Permission;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** The body's media type when it is not JSON (the CSV import). */
  bodyType?: 'text/csv';
  responses: Partial<Record<200 | 201 | 202 | 204, z.ZodType | null>>;
  /** The answer's media types when it is not JSON (exports, example files); its schema is then a string. */
  responseTypes?: string[];
}

export interface DocumentedRoute extends RouteDoc {
  method: Method;
  /** Express syntax, as served under /api: `/members/:accountId/roles`. */
  path: string;
}

const documented = new Map<string, DocumentedRoute>();

/** Every route declared through apiRoutes, in the order first declared. */
export function documentedRoutes(): DocumentedRoute[] {
  return [...documented.values()];
}

/**
 * Declares routes on an Express router together with their documentation:
 * `api.get('/members', { summary, permission, query, responses: { 200: memberPage } }, route(...))`.
 * The route is served with the permission check and is in /api/openapi.json; `prefix` is where
 * the router is mounted under /api (e.g. '/saml').
 */
export function apiRoutes(router: Router, prefix = '') {
  const declare =
    (method: Method) =>
    (path: string, doc: RouteDoc, ...handlers: RequestHandler[]): void => {
      documented.set(`${method} ${prefix}${path}`, { ...doc, method, path: `${prefix}${path}` });
      router[method](path, ...(doc.permission ? [requirePermission(doc.permission)] : []), ...handlers);
    };
  return {
    get: declare('get'),
    post: declare('post'),
    put: declare('put'),
    patch: declare('patch'),
    delete: declare('delete'),
  };
}
