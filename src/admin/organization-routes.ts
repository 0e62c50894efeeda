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
import { createCustomRole, listRoles } from '../core/roles.ts';
import { apiRoutes } from './api-routes.ts';
import { route } from './handler.ts';
import { dateTime, permission, uuid } from './schemas.ts';

const settingsInput = z
  .object({
    name: z.string().min(1).max(200).optional(),
    inviteTtlHours: z.number().int().min(1).max(8760).optional(),
    defaultRole: z.string().min(1).max(63).optional(),
    autoJoinVerifiedDomains: z.boolean().optional(),
    singleOrganization: z.boolean().optional(),
  })
  .strict();
const roleInput = z
  .object({
    key: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, _ or -, starting with a letter'),
    name: z.string().min(1).max(100),
    permissions: z.array(z.enum(PERMISSIONS)).max(PERMISSIONS.length),
  })
  .strict();

const domainInput = z.object({ domain: z.string().min(1).max(253) }).strict();

const organization = z.strictObject({
  id: uuid,
  slug: z.string(),
  name: z.string(),
  inviteTtlHours: z.number().int(),
  defaultRole: z.string(),
  autoJoinVerifiedDomains: z.boolean(),
  singleOrganization: z.boolean(),
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
      res.json(await updateOrganizationSettings(ctx.sql, p.organizationId, settingsInput.parse(req.body), p.actor));
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
