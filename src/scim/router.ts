import { Router, type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import SCIMMY from 'scimmy';
import SCIMMYRouters from 'scimmy-routers';
import type { AppContext } from '../context.ts';
import { sendScimError } from './answers.ts';
import type { ScimRequest } from './auth.ts';
import { scimError, toScimError } from './errors.ts';
import { scimExchange } from './exchange.ts';
import { groupHandlers } from './groups.ts';
import { jsonParser } from './json-body.ts';
import { MAX_PAGE_SIZE } from './list.ts';
import { bulkRoute } from './bulk.ts';
import { normalizedRequestBody } from './normalize-body.ts';
import { isObject } from './normalize.ts';
import { ownOperations, unusableInput } from './operations.ts';
import { userHandlers } from './users.ts';

/**
 * /scim/v2. The exchange at its head (exchange.ts) identifies every request and answers
 * orgsync's own operations (operations.ts: lists, /.search, POST /Users, PATCH); scimmy-routers
 * serves the rest (discovery, GET by id, PUT, DELETE, POST /Groups) through the handlers in
 * users.ts and groups.ts, and /Bulk is bulk.ts's.
 */
export function scimRouter(app: AppContext): Router {
  declareResources(app);
  const router = Router();
  // Authenticated (and rate limited) before the body is read: an unknown caller gets its 401
  // without its body being parsed, and a known one's malformed body is in its request log.
  const parseJson = jsonParser(app.config.bodyLimit);
  router.use(scimExchange(app, ownOperations(app, parseJson)));
  // A /Bulk body has its own limit (maxPayloadSize); the parser that reads a body first is the only one.
  router.post('/Bulk', jsonParser(app.config.scimBulk.maxPayloadSize));
  router.use(parseJson);
  router.use(refuseUnusableInput);
  router.use(normalizeBodies);

  router.post('/Bulk', bulkRoute(app.config.scimBulk, app.config.scimRateLimit));
  router.all('/Bulk', (_req, _res, next) => next(scimError(405, null, 'use POST for /Bulk')));
  router.all(['/.search', '/Me'], (_req, _res, next) => next(scimError(501, null, 'not implemented by orgsync')));

  const scimmyRouter = new SCIMMYRouters({
    type: 'bearer',
    docUri: `${app.config.publicUrl}/scim/v2`,
    // The exchange has answered 401 already; this only hands scimmy the caller.
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

/** A body nested too deep, or text PostgreSQL cannot hold, anywhere in the request (request-input.ts). */
const refuseUnusableInput: RequestHandler = (req, _res, next) => next(unusableInput(req) ?? undefined);

/** Okta's and Entra's quirks out of POST/PUT bodies before scimmy validates them (see normalize.ts). */
const normalizeBodies: RequestHandler = (req, _res, next) => {
  if ((req.method === 'POST' || req.method === 'PUT') && isObject(req.body))
    req.body = normalizedRequestBody(req.path, req.body);
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

/** Errors of the routes above and of body parsing, as SCIM error responses. */
function scimErrors(app: AppContext): ErrorRequestHandler {
  return (error, req, res: Response, _next) => {
    // scimmy-routers answers errors itself, then passes on those of status 500 and above. Those
    // its handlers threw went through `guard` (declareResources) and are logged already.
    if (res.headersSent) {
      if (!(error instanceof SCIMMY.Types.Error)) app.log.error({ err: error }, 'SCIM request failed');
      return;
    }
    sendScimError(app, req, res, error);
  };
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
