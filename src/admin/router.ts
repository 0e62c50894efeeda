import express, { Router } from 'express';
import type { AppContext } from '../context.ts';
import { auditRouter } from './audit-routes.ts';
import { authenticate } from './auth.ts';
import { groupMappingRouter } from './group-mapping-routes.ts';
import { groupRouter } from './group-routes.ts';
import { invitationRouter } from './invitation-routes.ts';
import { openApiDocument } from './openapi.ts';
import { memberRouter } from './member-routes.ts';
import { organizationRouter } from './organization-routes.ts';
import { samlAdminRouter } from './saml-routes.ts';
import { scimTokenRouter } from './scim-token-routes.ts';
import { syncAdminRouter } from './sync-routes.ts';

/**
 * The admin REST API under /api. Every route acts on the caller's own organization (the one its
 * API key or session belongs to), so no route takes an organization id from the request.
 */
export function adminRouter(ctx: AppContext): Router {
  const router = Router();
  router.use(express.json({ limit: ctx.config.bodyLimit }));
  const openApi = openApiDocument(ctx.config.publicUrl);
  router.get('/openapi.json', (_req, res) => {
    res.json(openApi);
  });
  router.use(authenticate(ctx));
  router.use('/saml', samlAdminRouter(ctx));
  router.use(organizationRouter(ctx));
  router.use(memberRouter(ctx));
  router.use(invitationRouter(ctx));
  router.use(groupRouter(ctx));
  router.use(groupMappingRouter(ctx));
  router.use(auditRouter(ctx));
  router.use(syncAdminRouter(ctx));
  router.use(scimTokenRouter(ctx));
  return router;
}
