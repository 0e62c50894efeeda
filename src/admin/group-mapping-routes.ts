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
import { apiRoutes } from './api-routes.ts';
import { route } from './handler.ts';
import { uuid } from './schemas.ts';

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

const rolesInput = z.object({ roles: z.array(z.string()).min(1).max(20) }).strict();
const mapping = z.strictObject({
  organizationId: uuid,
  id: uuid,
  groupId: uuid.nullable(),
  groupName: z.string().nullable(),
  roles: z.array(z.string()),
});
const preview = z.strictObject({
  groupId: z.string().nullable(),
  groupName: z.string().nullable(),
  affectedMembers: z.number().int(),
});

/** IdP group → role mappings: list, preview what one would affect, create, change, delete. */
export function groupMappingRouter(ctx: AppContext): Router {
  const router = Router();
  const api = apiRoutes(router);

  api.get(
    '/group-mappings',
    {
      summary: 'IdP group to role mappings',
      permission: 'members:view',
      responses: { 200: z.strictObject({ items: z.array(mapping) }) },
    },
    route(async (_req, res, p) => {
      res.json({ items: await listGroupRoleMappings(ctx.sql, p.organizationId) });
    }),
  );
  // What a mapping of this group (by id, or every group with this name) would affect, before saving it.
  api.get(
    '/group-mappings/preview',
    {
      summary: 'How many members a mapping of this group (by id or name) would affect',
      permission: 'members:view',
      query: previewQuery,
      responses: { 200: preview },
    },
    route(async (req, res, p) => {
      const { groupId, groupName } = previewQuery.parse(req.query);
      if (groupId !== undefined && !(await getGroup(ctx.sql, p.organizationId, groupId)))
        throw notFound('group', { id: groupId });
      const members = await membersOfMappedGroups(ctx.sql, p.organizationId, groupId ?? null, groupName ?? null);
      res.json({ groupId: groupId ?? null, groupName: groupName ?? null, affectedMembers: members.length });
    }),
  );
  api.post(
    '/group-mappings',
    {
      summary: 'Map a group (by id or name) to roles',
      permission: 'members:manage',
      body: mappingInput,
      responses: { 201: mapping },
    },
    route(async (req, res, p) => {
      const input = mappingInput.parse(req.body);
      res
        .status(201)
        .json(await createGroupRoleMapping(ctx.sql, { organizationId: p.organizationId, ...input }, p.actor));
    }),
  );
  api.patch(
    '/group-mappings/:id',
    {
      summary: 'Change the roles a mapping grants',
      permission: 'members:manage',
      body: rolesInput,
      responses: { 200: mapping },
    },
    route(async (req, res, p) => {
      const { roles } = rolesInput.parse(req.body);
      res.json(await updateGroupRoleMapping(ctx.sql, p.organizationId, String(req.params.id), roles, p.actor));
    }),
  );
  api.delete(
    '/group-mappings/:id',
    { summary: 'Delete a mapping', permission: 'members:manage', responses: { 204: null } },
    route(async (req, res, p) => {
      await deleteGroupRoleMapping(ctx.sql, p.organizationId, String(req.params.id), p.actor);
      res.status(204).end();
    }),
  );

  return router;
}
