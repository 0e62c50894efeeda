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
import { apiRoutes } from './api-routes.ts';
import { route } from './handler.ts';
import { dateTime, permission, uuid } from './schemas.ts';

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

const domainInput = z.object({ domain: z.string().min(1).max(253) }).strict();

const organization = z.strictObject({
  id: uuid,
  slug: z.string(),
  name: z.string(),
  inviteTtlHours: z.number().int(),
  defaultRole: z.string(),
  autoJoinVerifiedDomains: z.boolean(),
  singleOrganization: z.boolean(),
  requireSso: z.boolean(),
  ssoBreakGlassAccountIds: z.array(uuid),
  createdAt: dateTime,
  updatedAt: dateTime,
});
const role = z.strictObject({
  key: z.string(),
  name: z.string(),
  permissions: z.array(permission),
  builtIn: z.boolean(),
});
const domain = z.strictObject({
  domain: z.string(),
  verificationToken: z.string(),
  verifiedAt: dateTime.nullable(),
  checkedAt: dateTime.nullable(),
  verificationLostAt: dateTime.nullable(),
  createdAt: dateTime,
  record: z.strictObject({ name: z.string(), type: z.literal('TXT'), value: z.string() }),
});
const roleDeleted = z.strictObject({
  key: z.string(),
  reassignedTo: z.string().nullable(),
  members: z.number().int(),
  mappings: z.number().int(),
  apiKeys: z.number().int(),
  defaultRole: z.boolean(),
});

/** The caller's organization: settings and roles. */
export function organizationRouter(ctx: AppContext): Router {
  const router = Router();
  const api = apiRoutes(router);

  api.get(
    '/organization',
    {
      summary: "The caller's organization, and who the caller is with its permissions",
      responses: {
        200: organization.extend({
          you: z.strictObject({ actor: z.string(), permissions: z.array(permission) }),
        }),
      },
    },
    route(async (_req, res, p) => {
      const org = await findOrganization(ctx.sql, p.organizationId);
      res.json({ ...org, you: { actor: p.actor.name, permissions: p.permissions } });
    }),
  );
  api.patch(
    '/organization',
    { summary: 'Change settings', permission: 'org:manage', body: settingsInput, responses: { 200: organization } },
    route(async (req, res, p) => {
      const changes = settingsInput.parse(req.body);
      res.json(
        await updateOrganizationSettings(ctx.sql, p.organizationId, changes, p.actor, {
          hasEnabledSsoConnection: (tx) => hasEnabledConnection(tx, p.organizationId),
        }),
      );
    }),
  );

  api.get(
    '/roles',
    {
      summary: 'Built-in and custom roles, and every permission a role can hold',
      permission: 'members:view',
      responses: { 200: z.strictObject({ items: z.array(role), permissions: z.array(permission) }) },
    },
    route(async (_req, res, p) => {
      res.json({ items: await listRoles(ctx.sql, p.organizationId), permissions: PERMISSIONS });
    }),
  );
  api.post(
    '/roles',
    { summary: 'Create a custom role', permission: 'org:manage', body: roleInput, responses: { 201: role } },
    route(async (req, res, p) => {
      res.status(201).json(await createCustomRole(ctx.sql, p.organizationId, roleInput.parse(req.body), p.actor));
    }),
  );

  api.patch(
    '/roles/:key',
    {
      summary: "Rename a custom role or change its permissions (its holders' permissions change at once)",
      permission: 'org:manage',
      body: roleChange,
      responses: { 200: role },
    },
    route(async (req, res, p) => {
      const changes = roleChange.parse(req.body);
      res.json(await updateCustomRole(ctx.sql, p.organizationId, String(req.params.key), changes, p.actor));
    }),
  );
  api.delete(
    '/roles/:key',
    {
      summary:
        'Delete a custom role; one in use is refused (409 with its usage) unless reassignTo names the role that replaces it',
      permission: 'org:manage',
      query: roleDeletion,
      responses: { 200: roleDeleted },
    },
    route(async (req, res, p) => {
      const { reassignTo } = roleDeletion.parse(req.query);
      res.json(await deleteCustomRole(ctx.sql, p.organizationId, String(req.params.key), reassignTo, p.actor));
    }),
  );

  api.get(
    '/domains',
    {
      summary: 'Email domains and their verification',
      permission: 'org:manage',
      responses: { 200: z.strictObject({ items: z.array(domain) }) },
    },
    route(async (_req, res, p) => {
      res.json({ items: (await listDomains(ctx.sql, p.organizationId)).map(domainView) });
    }),
  );
  api.post(
    '/domains',
    {
      summary: 'Add a domain (answers its DNS TXT verification record)',
      permission: 'org:manage',
      body: domainInput,
      responses: { 201: domain },
    },
    route(async (req, res, p) => {
      const { domain } = domainInput.parse(req.body);
      res.status(201).json(domainView(await addDomain(ctx.sql, p.organizationId, domain, p.actor)));
    }),
  );
  api.post(
    '/domains/:domain/verify',
    {
      summary: 'Verify a domain: its DNS TXT records must include its token',
      permission: 'org:manage',
      responses: { 200: domain },
    },
    route(async (req, res, p) => {
      const lookupTxt = createTxtLookup(ctx.config.dnsServers);
      const domain = String(req.params.domain);
      res.json(domainView(await verifyDomain(ctx.sql, p.organizationId, domain, p.actor, lookupTxt)));
    }),
  );
  api.delete(
    '/domains/:domain',
    { summary: 'Remove a domain', permission: 'org:manage', responses: { 204: null } },
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
