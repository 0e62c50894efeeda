import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { DomainError, notFound } from '../core/errors.ts';
import { isUuid } from '../core/ids.ts';
import { listMembers, MEMBER_SORTS } from '../core/member-directory.ts';
import { leaveOrganization, removeMember, setRoles } from '../core/memberships.ts';
import { apiRoutes } from './api-routes.ts';
import { route } from './handler.ts';
import { dateTime, page, uuid } from './schemas.ts';

export const memberListQuery = z.object({
  tab: z.enum(['members', 'invitations']).optional(),
  sort: z.enum(MEMBER_SORTS).optional(),
  order: z.enum(['asc', 'desc']).optional(),
  status: z.enum(['active', 'pending', 'suspended']).optional(),
  role: z.string().max(63).optional(),
  q: z.string().trim().min(1).max(320).optional(),
  email: z.string().max(320).optional(),
  group: z.uuid().optional(),
  after: z.string().max(1000).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});
// `overrideIdp`: change a member the IdP manages through SCIM anyway (audited).
const overrideIdp = z.boolean().optional();
const rolesInput = z.object({ roles: z.array(z.string().min(1).max(63)).min(1).max(20), overrideIdp }).strict();
const bulkRemoveInput = z.object({ accountIds: z.array(z.string()).min(1).max(100), overrideIdp }).strict();
const removeQuery = z.object({ overrideIdp: z.enum(['true', 'false']).optional() });

const member = z.strictObject({
  accountId: uuid,
  email: z.string(),
  givenName: z.string().nullable(),
  familyName: z.string().nullable(),
  status: z.enum(['active', 'pending', 'suspended']),
  source: z.enum(['admin', 'invite', 'scim', 'sso']),
  roles: z.array(z.string()),
  mappedRoles: z.array(z.string()),
  effectiveRoles: z.array(z.string()),
  lastActiveAt: dateTime.nullable(),
  createdAt: dateTime,
  invitation: z.strictObject({ id: uuid, createdAt: dateTime, expiresAt: dateTime }).nullable(),
});
const memberRoles = z.strictObject({ accountId: uuid, roles: z.array(z.string()), mappedRoles: z.array(z.string()) });
const removal = z.strictObject({
  removed: z.number().int(),
  failed: z.number().int(),
  results: z.array(
    z.union([
      z.strictObject({ accountId: z.string(), removed: z.literal(true) }),
      z.strictObject({ accountId: z.string(), removed: z.literal(false), error: z.string(), message: z.string() }),
    ]),
  ),
});

function accountIdParam(raw: unknown): string {
  const id = String(raw);
  if (!isUuid(id)) throw notFound('member', { accountId: id });
  return id;
}

/** Members: list, change roles, remove one or many, leave. The rules live in the core. */
export function memberRouter(ctx: AppContext): Router {
  const router = Router();
  const api = apiRoutes(router);

  api.get(
    '/members',
    {
      summary:
        'A page of members (tab=members: active and suspended; tab=invitations: pending), sorted (sort=name|email|status|joined|lastActive, order=asc|desc), with the total; q searches name or email by prefix; pass `next` as `after`',
      permission: 'members:view',
      query: memberListQuery,
      responses: {
        200: page(member).extend({ total: z.number().int().describe('members in the whole filtered tab') }),
      },
    },
    route(async (req, res, p) => {
      const { group, q, ...query } = memberListQuery.parse(req.query);
      res.json(await listMembers(ctx.sql, p.organizationId, { ...query, search: q, groupId: group }));
    }),
  );

  api.put(
    '/members/:accountId/roles',
    {
      summary: "Replace a member's direct roles (overrideIdp for a member the IdP manages)",
      permission: 'members:manage',
      body: rolesInput,
      responses: { 200: memberRoles },
    },
    route(async (req, res, p) => {
      const { roles, ...options } = rolesInput.parse(req.body);
      const accountId = accountIdParam(req.params.accountId);
      const m = await setRoles(ctx.sql, p.organizationId, accountId, roles, p.actor, options);
      res.json({ accountId: m.accountId, roles: m.roles, mappedRoles: m.mappedRoles });
    }),
  );

  api.delete(
    '/members/:accountId',
    {
      summary: 'Remove a member (the account stays; overrideIdp for a member the IdP manages)',
      permission: 'members:manage',
      query: removeQuery,
      responses: { 204: null },
    },
    route(async (req, res, p) => {
      const overrideIdp = removeQuery.parse(req.query).overrideIdp === 'true';
      await removeMember(ctx.sql, p.organizationId, accountIdParam(req.params.accountId), p.actor, { overrideIdp });
      res.status(204).end();
    }),
  );

  // Each removal is its own transaction: one refusal (the last owner, oneself) does not undo the others.
  api.post(
    '/members/remove',
    {
      summary: 'Remove up to 100 members, a result each',
      permission: 'members:manage',
      body: bulkRemoveInput,
      responses: { 200: removal },
    },
    route(async (req, res, p) => {
      const { accountIds, ...options } = bulkRemoveInput.parse(req.body);
      const results = [];
      for (const accountId of [...new Set(accountIds)]) {
        try {
          await removeMember(ctx.sql, p.organizationId, accountIdParam(accountId), p.actor, options);
          results.push({ accountId, removed: true });
        } catch (error) {
          if (!(error instanceof DomainError)) throw error;
          results.push({ accountId, removed: false, error: error.code, message: error.message });
        }
      }
      res.json({
        removed: results.filter((r) => r.removed).length,
        failed: results.filter((r) => !r.removed).length,
        results,
      });
    }),
  );

  api.post(
    '/leave',
    { summary: 'The signed-in member leaves the organization', responses: { 204: null } },
    route(async (_req, res, p) => {
      if (!p.accountId) {
        res
          .status(400)
          .json({ error: 'invalid', message: 'only a signed-in member can leave; an API key has no membership' });
        return;
      }
      await leaveOrganization(ctx.sql, p.organizationId, p.accountId, p.actor);
      res.status(204).end();
    }),
  );

  return router;
}
