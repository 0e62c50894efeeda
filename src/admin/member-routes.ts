import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { DomainError, notFound } from '../core/errors.ts';
import { isUuid } from '../core/ids.ts';
import { listMembers, MEMBER_SORTS } from '../core/member-directory.ts';
import { leaveOrganization, removeMember, setRoles } from '../core/memberships.ts';
import { requirePermission } from './auth.ts';
import { route } from './handler.ts';

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

function accountIdParam(raw: unknown): string {
  const id = String(raw);
  if (!isUuid(id)) throw notFound('member', { accountId: id });
  return id;
}

/** Members: list, change roles, remove one or many, leave. The rules live in the core. */
export function memberRouter(ctx: AppContext): Router {
  const router = Router();

  router.get(
    '/members',
    requirePermission('members:view'),
    route(async (req, res, p) => {
      const { group, q, ...query } = memberListQuery.parse(req.query);
      res.json(await listMembers(ctx.sql, p.organizationId, { ...query, search: q, groupId: group }));
    }),
  );

  router.put(
    '/members/:accountId/roles',
    requirePermission('members:manage'),
    route(async (req, res, p) => {
      const { roles, ...options } = rolesInput.parse(req.body);
      const accountId = accountIdParam(req.params.accountId);
      const m = await setRoles(ctx.sql, p.organizationId, accountId, roles, p.actor, options);
      res.json({ accountId: m.accountId, roles: m.roles, mappedRoles: m.mappedRoles });
    }),
  );

  router.delete(
    '/members/:accountId',
    requirePermission('members:manage'),
    route(async (req, res, p) => {
      const overrideIdp = removeQuery.parse(req.query).overrideIdp === 'true';
      await removeMember(ctx.sql, p.organizationId, accountIdParam(req.params.accountId), p.actor, { overrideIdp });
      res.status(204).end();
    }),
  );

  // Each removal is its own transaction: one refusal (the last owner, oneself) does not undo the others.
  router.post(
    '/members/remove',
    requirePermission('members:manage'),
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

  router.post(
    '/leave',
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
