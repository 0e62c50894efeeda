import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { notFound } from '../core/errors.ts';
import {
  changeGroupMembers,
  createGroup,
  deleteGroup,
  getGroup,
  listGroupMemberIds,
  listGroups,
  updateGroup,
} from '../core/groups.ts';
import { apiRoutes } from './api-routes.ts';
import { route } from './handler.ts';
import { group, page, uuid } from './schemas.ts';

const nameInput = z.object({ displayName: z.string().min(1).max(256) }).strict();
const membersInput = z
  .object({ add: z.array(z.string()).max(1000).optional(), remove: z.array(z.string()).max(1000).optional() })
  .strict();
const groupsQuery = z.object({ source: z.enum(['local', 'scim', 'saml']).optional() });

const groupMembersQuery = z.object({ after: z.uuid().optional() });
const groupListItem = group.omit({ organizationId: true, version: true }).extend({ memberCount: z.number().int() });
const memberChange = z.strictObject({ added: z.array(uuid), removed: z.array(uuid) });

/** Groups: local ones are managed here; IdP groups (scim, saml) are read-only, the IdP owns them. */
export function groupRouter(ctx: AppContext): Router {
  const router = Router();
  const api = apiRoutes(router);

  /** Only local groups can be changed through the admin API. */
  const localGroup = async (organizationId: string, id: string) => {
    const group = await getGroup(ctx.sql, organizationId, id);
    if (!group || group.source !== 'local') throw notFound('local group', { id });
    return group;
  };

  api.get(
    '/groups',
    {
      summary: 'Groups with member counts',
      permission: 'members:view',
      query: groupsQuery,
      responses: { 200: z.strictObject({ items: z.array(groupListItem) }) },
    },
    route(async (req, res, p) => {
      const { source } = groupsQuery.parse(req.query);
      res.json({ items: await listGroups(ctx.sql, p.organizationId, source) });
    }),
  );
  api.post(
    '/groups',
    { summary: 'Create a local group', permission: 'members:manage', body: nameInput, responses: { 201: group } },
    route(async (req, res, p) => {
      const { displayName } = nameInput.parse(req.body);
      res
        .status(201)
        .json(await createGroup(ctx.sql, { organizationId: p.organizationId, source: 'local', displayName }, p.actor));
    }),
  );
  api.patch(
    '/groups/:id',
    { summary: 'Rename a local group', permission: 'members:manage', body: nameInput, responses: { 200: group } },
    route(async (req, res, p) => {
      const { displayName } = nameInput.parse(req.body);
      const group = await localGroup(p.organizationId, String(req.params.id));
      res.json(await updateGroup(ctx.sql, p.organizationId, group.id, { displayName }, p.actor));
    }),
  );
  api.delete(
    '/groups/:id',
    { summary: 'Delete a local group', permission: 'members:manage', responses: { 204: null } },
    route(async (req, res, p) => {
      const group = await localGroup(p.organizationId, String(req.params.id));
      await deleteGroup(ctx.sql, p.organizationId, group.id, p.actor);
      res.status(204).end();
    }),
  );
  api.get(
    '/groups/:id/members',
    {
      summary: 'Member account ids of a group, 200 at a time',
      permission: 'members:view',
      query: groupMembersQuery,
      responses: { 200: page(z.strictObject({ accountId: uuid }), uuid) },
    },
    route(async (req, res, p) => {
      const group = await getGroup(ctx.sql, p.organizationId, String(req.params.id));
      if (!group) throw notFound('group', { id: req.params.id });
      const { after } = groupMembersQuery.parse(req.query);
      const ids = await listGroupMemberIds(ctx.sql, p.organizationId, group.id, { after, limit: 200 });
      res.json({ items: ids.map((accountId) => ({ accountId })), next: ids.length === 200 ? ids[199] : null });
    }),
  );
  // Only people already in the organization can be added.
  api.post(
    '/groups/:id/members',
    {
      summary: 'Add and remove members of a local group',
      permission: 'members:manage',
      body: membersInput,
      responses: { 200: memberChange },
    },
    route(async (req, res, p) => {
      const change = membersInput.parse(req.body);
      const group = await localGroup(p.organizationId, String(req.params.id));
      res.json(await changeGroupMembers(ctx.sql, p.organizationId, group.id, change, p.actor));
    }),
  );

  return router;
}
