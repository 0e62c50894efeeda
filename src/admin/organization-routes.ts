import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { createTxtLookup } from '../core/domain-dns.ts';
import {
  addDomain,
  listDomains,
  removeDomain,
  verificationRecord,
  verifyDomain,
  type OrganizationDomain,
} from '../core/domains.ts';
import { findOrganization, updateOrganizationSettings } from '../core/organizations.ts';
import { PERMISSIONS } from '../core/permissions.ts';
import { MAX_BREAK_GLASS_OWNERS } from '../core/required-sso.ts';
import { hasEnabledConnection } from '../saml/connections.ts';
import { createCustomRole, listRoles } from '../core/roles.ts';
import { requirePermission } from './auth.ts';
import { route } from './handler.ts';

const settingsInput = z
  .object({
    name: z.string().min(1).max(200).optional(),
    inviteTtlHours: z.number().int().min(1).max(8760).optional(),
    defaultRole: z.string().min(1).max(63).optional(),
    autoJoinVerifiedDomains: z.boolean().optional(),
    singleOrganization: z.boolean().optional(),
    requireSso: z.boolean().optional(),
    ssoBreakGlassAccountIds: z.array(z.uuid()).max(MAX_BREAK_GLASS_OWNERS).optional(),
  })
  .strict();
const roleInput = z
  .object({
    key: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, _ or -, starting with a letter'),
    name: z.string().min(1).max(100),
    permissions: z.array(z.enum(PERMISSIONS)).max(PERMISSIONS.length),
  })
  .strict();

/** The caller's organization: settings and roles. */
export function organizationRouter(ctx: AppContext): Router {
  const router = Router();

  router.get(
    '/organization',
    route(async (_req, res, p) => {
      const org = await findOrganization(ctx.sql, p.organizationId);
      res.json({ ...org, you: { actor: p.actor.name, permissions: p.permissions } });
    }),
  );
  router.patch(
    '/organization',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      const changes = settingsInput.parse(req.body);
      res.json(
        await updateOrganizationSettings(ctx.sql, p.organizationId, changes, p.actor, {
          hasEnabledSsoConnection: (tx) => hasEnabledConnection(tx, p.organizationId),
        }),
      );
    }),
  );

  router.get(
    '/roles',
    requirePermission('members:view'),
    route(async (_req, res, p) => {
      res.json({ items: await listRoles(ctx.sql, p.organizationId), permissions: PERMISSIONS });
    }),
  );
  router.post(
    '/roles',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      res.status(201).json(await createCustomRole(ctx.sql, p.organizationId, roleInput.parse(req.body), p.actor));
    }),
  );

  router.get(
    '/domains',
    requirePermission('org:manage'),
    route(async (_req, res, p) => {
      res.json({ items: (await listDomains(ctx.sql, p.organizationId)).map(domainView) });
    }),
  );
  router.post(
    '/domains',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      const { domain } = z
        .object({ domain: z.string().min(1).max(253) })
        .strict()
        .parse(req.body);
      res.status(201).json(domainView(await addDomain(ctx.sql, p.organizationId, domain, p.actor)));
    }),
  );
  router.post(
    '/domains/:domain/verify',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      const lookupTxt = createTxtLookup(ctx.config.dnsServers);
      const domain = String(req.params.domain);
      res.json(domainView(await verifyDomain(ctx.sql, p.organizationId, domain, p.actor, lookupTxt)));
    }),
  );
  router.delete(
    '/domains/:domain',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      await removeDomain(ctx.sql, p.organizationId, String(req.params.domain), p.actor);
      res.status(204).end();
    }),
  );

  return router;
}

/** A domain with the TXT record to publish for it. */
function domainView(domain: OrganizationDomain) {
  return { ...domain, record: verificationRecord(domain) };
}
