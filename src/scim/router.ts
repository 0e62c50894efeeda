import express, { Router, type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import SCIMMY from 'scimmy';
import SCIMMYRouters from 'scimmy-routers';
import type { AppContext } from '../context.ts';
import { inputProblem } from '../http/request-input.ts';
import { authenticateScim, type ScimRequest } from './auth.ts';
import { errorBody, scimError, toScimError, type ScimError } from './errors.ts';
import { conditionalRequests } from './etags.ts';
import { groupHandlers, listGroupsResponse, patchGroup } from './groups.ts';
import { MAX_PAGE_SIZE } from './list.ts';
import { bulkRoute } from './bulk.ts';
import { normalizedBody } from './normalize-body.ts';
import { isObject } from './normalize.ts';
import { rateLimitPerToken } from './rate-limit.ts';
import { requestLog } from './request-log.ts';
import { scimOperations, scimOutcome } from '../metrics.ts';
import { createUserResponse, listUsersResponse, patchUser, userHandlers } from './users.ts';

/**
 * /scim/v2. scimmy-routers serves discovery, GET by id, PUT, DELETE and POST /Groups through
 * the handlers in users.ts and groups.ts. Lists, /.search, PATCH and POST /Users are orgsync's
 * own, ahead of it: they filter and page in SQL (scimmy would page in memory), apply Okta's and
 * Entra's PATCH shapes, change one group member without reading the others, and check a new
 * user against the schema once.
 */
export function scimRouter(app: AppContext): Router {
  declareResources(app);
  const router = Router();
  router.use(requestLog(app));
  router.use(countOperations);
  // Authenticated (and rate limited) before the body is read: an unknown caller gets its 401
  // without its body being parsed, and a known one's malformed body is in its request log.
  router.use(authenticateScim(app));
  router.use(rateLimitPerToken(app.sql, app.config.scimRateLimit));
  router.use(conditionalRequests);
  const json = (limit: string | number) => express.json({ type: ['application/scim+json', 'application/json'], limit });
  // A /Bulk body has its own limit (maxPayloadSize); the parser that reads a body first is the only one.
  router.post('/Bulk', json(app.config.scimBulk.maxPayloadSize));
  router.use(json(app.config.bodyLimit));
  router.use(refuseUnusableInput);
  router.use(normalizeBodies);

  router.get(
    '/Users',
    scimRoute(async (ctx, req) => listUsersResponse(ctx, req.query)),
  );
  router.post(
    '/Users',
    scimRoute(async (ctx, req) => createUserResponse(ctx, req.body, req.query), 201),
  );
  router.post(
    '/Users/.search',
    scimRoute(async (ctx, req) => listUsersResponse(ctx, searchParams(req))),
  );
  router.patch(
    '/Users/:id',
    scimRoute(async (ctx, req) => patchUser(ctx, req.params.id!, req.body, req.query)),
  );
  router.get(
    '/Groups',
    scimRoute(async (ctx, req) => listGroupsResponse(ctx, req.query)),
  );
  router.post(
    '/Groups/.search',
    scimRoute(async (ctx, req) => listGroupsResponse(ctx, searchParams(req))),
  );
  router.patch(
    '/Groups/:id',
    scimRoute(async (ctx, req) => patchGroup(ctx, req.params.id!, req.body)),
  );
  router.post('/Bulk', bulkRoute(app.config.scimBulk, app.config.scimRateLimit));
  router.all('/Bulk', (_req, _res, next) => next(scimError(405, null, 'use POST for /Bulk')));
  router.all(['/.search', '/Me'], (_req, _res, next) => next(scimError(501, null, 'not implemented by orgsync')));

  const scimmyRouter = new SCIMMYRouters({
    type: 'bearer',
    docUri: `${app.config.publicUrl}/scim/v2`,
    // authenticateScim has answered 401 already; this only hands scimmy the caller.
    handler: (req: Request) => {
      if (!req.scim) throw new Error('unauthenticated');
      return req.scim.credentialId;
    },
    context: (req: Request) => req.scim,
    baseUri: () => app.config.publicUrl,
  });
  advertiseCapabilities(app.config.scimBulk);
  router.post('/Groups', locateCreated);
  router.use(scimmyRouter as unknown as Router);
  router.use(scimErrors(app));
  return router;
}

/**
 * Runs an orgsync SCIM handler: its answer as application/scim+json, or 204 when it has none.
 * A 201 carries the new resource's location in the Location header too.
 */
function scimRoute(fn: (ctx: ScimRequest, req: Request) => Promise<unknown>, status = 200): RequestHandler {
  return (req, res, next) => {
    fn(req.scim!, req).then(
      (body) => {
        res.type('application/scim+json');
        if (body === undefined) return void res.status(204).end();
        if (status === 201) res.location(String((body as { meta?: { location?: string } }).meta?.location ?? ''));
        res.status(status).send(JSON.stringify(body));
      },
      (error: unknown) => next(error),
    );
  };
}

function searchParams(req: Request): Record<string, unknown> {
  if (!isObject(req.body)) throw scimError(400, 'invalidSyntax', 'a search needs a SearchRequest object');
  return req.body;
}

/** A body nested too deep, or text PostgreSQL cannot hold, anywhere in the request (request-input.ts). */
const refuseUnusableInput: RequestHandler = (req, _res, next) => {
  const problem = inputProblem(req);
  if (!problem) return next();
  const scimType =
    problem.kind === 'too_deep' ? 'invalidSyntax' : problem.parameter === 'filter' ? 'invalidFilter' : 'invalidValue';
  next(scimError(400, scimType, problem.message));
};

/** Okta's and Entra's quirks out of POST/PUT bodies before scimmy validates them (see normalize.ts). */
const normalizeBodies: RequestHandler = (req, _res, next) => {
  if ((req.method === 'POST' || req.method === 'PUT') && isObject(req.body) && !req.path.startsWith('/Bulk')) {
    req.body = normalizedBody(req.path.startsWith('/Users') ? 'Users' : 'Groups', req.body);
  }
  next();
};

/**
 * scimmy-routers answers a 201 without a Location header (RFC 7644 §3.3 asks for one): add it,
 * from the new resource's meta.location, as its answer is sent.
 */
const locateCreated: RequestHandler = (_req, res, next) => {
  const send = res.send;
  res.send = function (this: Response, body?: unknown) {
    res.send = send;
    const location = (body as { meta?: { location?: unknown } } | null)?.meta?.location;
    if (res.statusCode === 201 && typeof location === 'string') res.location(location);
    return send.call(this, body);
  };
  next();
};

/** Errors of orgsync's own routes and of body parsing, as SCIM error responses. */
function scimErrors(app: AppContext): ErrorRequestHandler {
  return (error, req, res: Response, _next) => {
    // scimmy-routers answers errors itself, then passes on those of status 500 and above. Those
    // its handlers threw went through `guard` (declareResources) and are logged already.
    if (res.headersSent) {
      if (!(error instanceof SCIMMY.Types.Error)) app.log.error({ err: error }, 'SCIM request failed');
      return;
    }
    // scimmy-routers answers only the statuses RFC 7644 §3.12 lists: for another (a 502 or 503 of
    // its handlers) its error handler throws instead, and the failure `guard` kept is answered here.
    const scim = req.scim?.failure ?? requestError(error, req, app);
    res
      .status(Number(scim.status))
      .type('application/scim+json')
      .send(JSON.stringify(errorBody(scim)));
  };
}

function requestError(error: unknown, req: Request, app: AppContext): ScimError {
  const { type: bodyErrorType, status } = (error ?? {}) as { type?: unknown; status?: unknown };
  if (bodyErrorType === 'entity.parse.failed')
    return scimError(400, 'invalidSyntax', 'the request body is not valid JSON');
  if (bodyErrorType === 'entity.too.large') return scimError(413, null, tooLargeMessage(req, app));
  // Other errors express and body-parser raise carry a 4xx status (say, a path that does not
  // percent-decode, or an unsupported charset).
  if (typeof status === 'number' && status >= 400 && status < 500 && !(error instanceof SCIMMY.Types.Error))
    return scimError(status, status === 400 ? 'invalidValue' : null, String((error as Error).message));
  return toScimError(error, (e) => app.log.error({ err: e }, 'SCIM request failed'));
}

/** RFC 7644 §3.7.4: a /Bulk request over maxPayloadSize is told the limit it exceeded. */
function tooLargeMessage(req: Request, app: AppContext): string {
  if (req.path !== '/Bulk') return 'the request body is too large';
  return `the bulk request is larger than maxPayloadSize (${app.config.scimBulk.maxPayloadSize} bytes)`;
}

let declared = false;

/** scimmy keeps its resources and configuration in module state: declare them once per process. */
function declareResources(app: AppContext): void {
  if (declared) return;
  declared = true;
  const guard =
    <A extends unknown[]>(fn: (...args: A) => Promise<unknown>) =>
    async (...args: A) => {
      try {
        return await fn(...args);
      } catch (error) {
        const failure = toScimError(error, (e) => app.log.error({ err: e }, 'SCIM request failed'));
        // The handlers' last argument is the request's ScimRequest.
        const ctx = args.at(-1) as ScimRequest | undefined;
        if (ctx) ctx.failure = failure;
        throw failure;
      }
    };
  SCIMMY.Resources.declare(
    SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false)
      .ingress(guard(userHandlers.ingress) as never)
      .egress(guard(userHandlers.egress) as never)
      .degress(guard(userHandlers.degress) as never),
  );
  SCIMMY.Resources.declare(
    SCIMMY.Resources.Group.ingress(guard(groupHandlers.ingress) as never)
      .egress(guard(groupHandlers.egress) as never)
      .degress(guard(groupHandlers.degress) as never),
  );
}

/** What ServiceProviderConfig advertises; set after scimmy-routers sets its defaults. */
function advertiseCapabilities(bulk: AppContext['config']['scimBulk']): void {
  SCIMMY.Config.set({
    patch: true,
    bulk: { supported: true, maxOperations: bulk.maxOperations, maxPayloadSize: bulk.maxPayloadSize },
    filter: { supported: true, maxResults: MAX_PAGE_SIZE },
    sort: true,
    etag: true,
    changePassword: false,
  });
}

const RESOURCE = /^\/(Users|Groups|Bulk|Schemas|ResourceTypes|ServiceProviderConfig)\b/;

/** Counts every SCIM request by method, resource type and outcome (for /metrics). */
const countOperations: RequestHandler = (req, res, next) => {
  const resource = RESOURCE.exec(req.path)?.[1] ?? 'other';
  res.on('finish', () => {
    scimOperations.inc({ method: req.method, resource, outcome: scimOutcome(res.statusCode) });
  });
  next();
};
