import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { notFound } from '../core/errors.ts';
import { getGroup } from '../core/groups.ts';
import {
  createGroupRoleMapping,
  deleteGroupRoleMapping,
  listGroupRoleMappings,
  membersOfMappedGroups,
  updateGroupRoleMapping,
} from '../core/role-mapping.ts';
import { requirePermission } from './auth.ts';
import { route } from './handler.ts';

const mappingInput = z
  .object({
    groupId: z.string().optional(),
    groupName: z.string().optional(),
    roles: z.array(z.string()).min(1).max(20),
  })
  .strict();
const previewQuery = z
  .object({ groupId: z.string().optional(), groupName: z.string().trim().min(1).max(256).optional() })
  .refine((q) => (q.groupId === undefined) !== (q.groupName === undefined), 'give either groupId or groupName');

/** IdP group → role mappings: list, preview what one would affect, create, change, delete. */
export function groupMappingRouter(ctx: AppContext): Router {
  const router = Router();

  router.get(
    '/group-mappings',
    requirePermission('members:view'),
    route(async (_req, res, p) => {
      res.json({ items: await listGroupRoleMappings(ctx.sql, p.organizationId) });
    }),
  );
  // What a mapping of this group (by id, or every group with this name) would affect, before saving it.
  router.get(
    '/group-mappings/preview',
    requirePermission('members:view'),
    route(async (req, res, p) => {
      const { groupId, groupName } = previewQuery.parse(req.query);
      if (groupId !== undefined && !(await getGroup(ctx.sql, p.organizationId, groupId)))
        throw notFound('group', { id: groupId });
      const members = await membersOfMappedGroups(ctx.sql, p.organizationId, groupId ?? null, groupName ?? null);
      res.json({ groupId: groupId ?? null, groupName: groupName ?? null, affectedMembers: members.length });
    }),
  );
  router.post(
    '/group-mappings',
    requirePermission('members:manage'),
    route(async (req, res, p) => {
      const input = mappingInput.parse(req.body);
      res
        .status(201)
        .json(await createGroupRoleMapping(ctx.sql, { organizationId: p.organizationId, ...input }, p.actor));
    }),
  );
  router.patch(
    '/group-mappings/:id',
    requirePermission('members:manage'),
    route(async (req, res, p) => {
      const { roles } = z
        .object({ roles: z.array(z.string()).min(1).max(20) })
        .strict()
        .parse(req.body);
      res.json(await updateGroupRoleMapping(ctx.sql, p.organizationId, String(req.params.id), roles, p.actor));
    }),
  );
  router.delete(
    '/group-mappings/:id',
    requirePermission('members:manage'),
    route(async (req, res, p) => {
      await deleteGroupRoleMapping(ctx.sql, p.organizationId, String(req.params.id), p.actor);
      res.status(204).end();
    }),
  );

  return router;
}
