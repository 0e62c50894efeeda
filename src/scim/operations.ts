import type { Request, RequestHandler, Response } from 'express';
import type { AppContext } from '../context.ts';
import { parseByteSize } from '../http/byte-size.ts';
import { inputProblem } from '../http/request-input.ts';
import { sendScim, sendScimError } from './answers.ts';
import type { ScimRequest } from './auth.ts';
import { scimError, type ScimError } from './errors.ts';
import { listGroupsResponse, patchGroup } from './groups.ts';
import { readJsonBody } from './json-body.ts';
import { normalizedRequestBody } from './normalize-body.ts';
import { isObject } from './normalize.ts';
import { RESOURCE_PATH } from './resource-path.ts';
import { createUserResponse, listUsersResponse, patchUser } from './users.ts';

/**
 * orgsync's own SCIM operations, the ones an IdP sends by the thousand: lists and lookups, user
 * creation, PATCH of a user or a group. They filter and page in SQL (scimmy would page in
 * memory), apply Okta's and Entra's PATCH shapes, change one group member without reading the
 * others, and check a new user against the schema once. They are answered by the exchange at the
 * head of /scim/v2 (exchange.ts) without passing through express's router and body parser;
 * scimmy-routers serves the rest (router.ts).
 */
type Run = (ctx: ScimRequest, req: Request, body: unknown, id: string) => Promise<unknown>;

interface Operation {
  method: 'GET' | 'POST' | 'PATCH';
  /** The route as express would name it (for the HTTP metric's label). */
  route: string;
  run: Run;
  /** 201 for a creation; else 200 (204 when there is nothing to answer). */
  status?: number;
}

const OPERATIONS: Operation[] = [
  { method: 'GET', route: '/Users', run: (ctx, req) => listUsersResponse(ctx, req.query) },
  { method: 'POST', route: '/Users', run: (ctx, req, body) => createUserResponse(ctx, body, req.query), status: 201 },
  { method: 'POST', route: '/Users/.search', run: (ctx, _req, body) => listUsersResponse(ctx, searchParams(body)) },
  { method: 'PATCH', route: '/Users/:id', run: (ctx, req, body, id) => patchUser(ctx, id, body, req.query) },
  { method: 'GET', route: '/Groups', run: (ctx, req) => listGroupsResponse(ctx, req.query) },
  { method: 'POST', route: '/Groups/.search', run: (ctx, _req, body) => listGroupsResponse(ctx, searchParams(body)) },
  { method: 'PATCH', route: '/Groups/:id', run: (ctx, _req, body, id) => patchGroup(ctx, id, body) },
];

export interface OwnOperations {
  app: AppContext;
  bodyLimit: number;
  /** express.json with the SCIM routes' options, for bodies readJsonBody leaves to it. */
  parser: RequestHandler;
}

export function ownOperations(app: AppContext, parser: RequestHandler): OwnOperations {
  return { app, bodyLimit: parseByteSize(app.config.bodyLimit), parser };
}

/** The own operation a request is for (matched as express matches: any case, an optional trailing slash). */
export function ownOperation(
  operations: OwnOperations,
  req: Request,
): { route: string; answer(req: Request, res: Response): Promise<void> } | undefined {
  const match = RESOURCE_PATH.exec(req.path);
  if (!match) return undefined;
  const [, collection, rest] = match;
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const resource = collection!.toLowerCase() === 'users' ? '/Users' : '/Groups';
  const search = method === 'POST' && rest?.toLowerCase() === '.search';
  const route = rest === undefined ? resource : search ? `${resource}/.search` : `${resource}/:id`;
  const operation = OPERATIONS.find((o) => o.method === method && o.route === route);
  if (!operation) return undefined;
  return { route, answer: (req, res) => answer(operations, operation, req, res, search ? undefined : rest) };
}

async function answer(
  { app, bodyLimit, parser }: OwnOperations,
  operation: Operation,
  req: Request,
  res: Response,
  rawId: string | undefined,
): Promise<void> {
  try {
    req.body = await readJsonBody(req, res, bodyLimit, parser);
    const unusable = unusableInput(req);
    if (unusable) throw unusable;
    // Okta's and Entra's quirks out of a POST body (normalize.ts) before it is checked.
    if (req.method === 'POST' && isObject(req.body)) req.body = normalizedRequestBody(req.path, req.body);
    const id = rawId === undefined ? '' : decodeParam(rawId);
    sendScim(res, operation.status ?? 200, await operation.run(req.scim!, req, req.body, id));
  } catch (error) {
    sendScimError(app, req, res, error);
  }
}

/** A body nested too deep, or text PostgreSQL cannot hold, anywhere in the request (request-input.ts). */
export function unusableInput(req: Request): ScimError | null {
  const problem = inputProblem(req);
  if (!problem) return null;
  const scimType =
    problem.kind === 'too_deep' ? 'invalidSyntax' : problem.parameter === 'filter' ? 'invalidFilter' : 'invalidValue';
  return scimError(400, scimType, problem.message);
}

/**
 * A resource id in the path that does not percent-decode, as express refuses it (400) for the
 * routes scimmy-routers serves: their own error handler would answer it without a scimType.
 */
export function undecodableId(req: Request): Error | null {
  const id = RESOURCE_PATH.exec(req.path)?.[2];
  if (id === undefined) return null;
  try {
    decodeParam(id);
    return null;
  } catch (error) {
    return error as Error;
  }
}

/** A path parameter, percent-decoded as express decodes route parameters (a bad escape is a 400). */
function decodeParam(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw Object.assign(new URIError(`Failed to decode param '${value}'`), { status: 400 });
  }
}

function searchParams(body: unknown): Record<string, unknown> {
  if (!isObject(body)) throw scimError(400, 'invalidSyntax', 'a search needs a SearchRequest object');
  return body;
}
