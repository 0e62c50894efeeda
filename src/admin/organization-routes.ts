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
import { deleteCustomRole, updateCustomRole } from '../core/role-changes.ts';
import { createCustomRole, listRoles } from '../core/roles.ts';
import { requirePermission } from './auth.ts';
import { route } from './handler.ts';

const settingsInput = z
  .object({
    name: z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters').optional(),
    inviteTtlHours: z
      .number('must be a number of hours')
      .int('must be a whole number of hours')
      .min(1, 'must be at least 1 hour')
      .max(8760, 'must be at most 8760 hours (a year)')
      .optional(),
    defaultRole: z.string().min(1).max(63).optional(),
    autoJoinVerifiedDomains: z.boolean().optional(),
    singleOrganization: z.boolean().optional(),
    requireSso: z.boolean().optional(),
    ssoBreakGlassAccountIds: z.array(z.uuid()).max(MAX_BREAK_GLASS_OWNERS).optional(),
  })
  .strict();
const roleName = z.string().trim().min(1, 'must not be empty').max(100, 'must be at most 100 characters');
const rolePermissions = z.array(z.enum(PERMISSIONS)).max(PERMISSIONS.length);
const roleInput = z
  .object({
    key: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, _ or -, starting with a letter'),
    name: roleName,
    permissions: rolePermissions,
  })
  .strict();
const roleChange = z.object({ name: roleName.optional(), permissions: rolePermissions.optional() }).strict();
const roleDeletion = z.object({ reassignTo: z.string().min(1).max(63).optional() });

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

  router.patch(
    '/roles/:key',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      const changes = roleChange.parse(req.body);
      res.json(await updateCustomRole(ctx.sql, p.organizationId, String(req.params.key), changes, p.actor));
    }),
  );
  // A role in use is refused (409 with its usage) unless ?reassignTo names the role that replaces it.
  router.delete(
    '/roles/:key',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      const { reassignTo } = roleDeletion.parse(req.query);
      res.json(await deleteCustomRole(ctx.sql, p.organizationId, String(req.params.key), reassignTo, p.actor));
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
