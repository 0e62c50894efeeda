import express, { Router, type RequestHandler } from 'express';
import type { AppContext } from '../context.ts';
import { inputProblem } from '../http/request-input.ts';
import { apiKeyRouter } from './api-key-routes.ts';
import { auditRouter } from './audit-routes.ts';
import { authenticate } from './auth.ts';
import { groupMappingRouter } from './group-mapping-routes.ts';
import { groupRouter } from './group-routes.ts';
import { importExampleRouter, importRouter } from './import-routes.ts';
import { invitationRouter } from './invitation-routes.ts';
import { openApiDocument } from './openapi.ts';
import { memberRouter } from './member-routes.ts';
import { organizationRouter } from './organization-routes.ts';
import { samlAdminRouter } from './saml-routes.ts';
import { scimTokenRouter } from './scim-token-routes.ts';
import { syncAdminRouter } from './sync-routes.ts';

/** A body nested too deep, or text PostgreSQL cannot hold, anywhere in the request (request-input.ts). */
const refuseUnusableInput: RequestHandler = (req, res, next) => {
  const problem = inputProblem(req);
  if (!problem) return next();
  res.status(400).json({ error: 'invalid', message: problem.message, details: { problem: problem.kind } });
};

/**
 * The admin REST API under /api. Every route acts on the caller's own organization (the one its
 * API key or session belongs to), so no route takes an organization id from the request.
 */
export function adminRouter(ctx: AppContext): Router {
  const router = Router();
  // Built once every router below has declared its routes (apiRoutes).
  let openApi: ReturnType<typeof openApiDocument> | undefined;
  router.get('/openapi.json', (_req, res) => {
    res.json((openApi ??= openApiDocument(ctx.config.publicUrl)));
  });
  router.use(importExampleRouter());
  // The caller is known before its body is read: an unknown one gets 401 whatever it sends.
  router.use(authenticate(ctx));
  router.use(express.json({ limit: ctx.config.bodyLimit }));
  // The CSV import's file (POST /invitations/imports and /invitations/import).
  router.use(express.text({ type: ['text/csv', 'text/plain'], limit: ctx.config.bodyLimit }));
  router.use(refuseUnusableInput);
  router.use('/saml', samlAdminRouter(ctx));
  router.use(organizationRouter(ctx));
  router.use(memberRouter(ctx));
  router.use(importRouter(ctx));
  router.use(invitationRouter(ctx));
  router.use(groupRouter(ctx));
  router.use(groupMappingRouter(ctx));
  router.use(auditRouter(ctx));
  router.use(syncAdminRouter(ctx));
  router.use(scimTokenRouter(ctx));
  router.use(apiKeyRouter(ctx));
  return router;
}
