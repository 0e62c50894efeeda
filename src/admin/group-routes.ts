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
import { requirePermission } from './auth.ts';
import { route } from './handler.ts';

const nameInput = z.object({ displayName: z.string().min(1).max(256) }).strict();
const membersInput = z
  .object({ add: z.array(z.string()).max(1000).optional(), remove: z.array(z.string()).max(1000).optional() })
  .strict();
const groupsQuery = z.object({ source: z.enum(['local', 'scim', 'saml']).optional() });

/** Groups: local ones are managed here; IdP groups (scim, saml) are read-only, the IdP owns them. */
export function groupRouter(ctx: AppContext): Router {
  const router = Router();

  /** Only local groups can be changed through the admin API. */
  const localGroup = async (organizationId: string, id: string) => {
    const group = await getGroup(ctx.sql, organizationId, id);
    if (!group || group.source !== 'local') throw notFound('local group', { id });
    return group;
  };

  router.get(
    '/groups',
    requirePermission('members:view'),
    route(async (req, res, p) => {
      const { source } = groupsQuery.parse(req.query);
      res.json({ items: await listGroups(ctx.sql, p.organizationId, source) });
    }),
  );
  router.post(
    '/groups',
    requirePermission('members:manage'),
    route(async (req, res, p) => {
      const { displayName } = nameInput.parse(req.body);
      res
        .status(201)
        .json(await createGroup(ctx.sql, { organizationId: p.organizationId, source: 'local', displayName }, p.actor));
    }),
  );
  router.patch(
    '/groups/:id',
    requirePermission('members:manage'),
    route(async (req, res, p) => {
      const { displayName } = nameInput.parse(req.body);
      const group = await localGroup(p.organizationId, String(req.params.id));
      res.json(await updateGroup(ctx.sql, p.organizationId, group.id, { displayName }, p.actor));
    }),
  );
  router.delete(
    '/groups/:id',
    requirePermission('members:manage'),
    route(async (req, res, p) => {
      const group = await localGroup(p.organizationId, String(req.params.id));
      await deleteGroup(ctx.sql, p.organizationId, group.id, p.actor);
      res.status(204).end();
    }),
  );
  router.get(
    '/groups/:id/members',
    requirePermission('members:view'),
    route(async (req, res, p) => {
      const group = await getGroup(ctx.sql, p.organizationId, String(req.params.id));
      if (!group) throw notFound('group', { id: req.params.id });
      const { after } = z.object({ after: z.uuid().optional() }).parse(req.query);
      const ids = await listGroupMemberIds(ctx.sql, p.organizationId, group.id, { after, limit: 200 });
      res.json({ items: ids.map((accountId) => ({ accountId })), next: ids.length === 200 ? ids[199] : null });
    }),
  );
  // Only people already in the organization can be added.
  router.post(
    '/groups/:id/members',
    requirePermission('members:manage'),
    route(async (req, res, p) => {
      const change = membersInput.parse(req.body);
      const group = await localGroup(p.organizationId, String(req.params.id));
      res.json(await changeGroupMembers(ctx.sql, p.organizationId, group.id, change, p.actor));
    }),
  );

  return router;
}
