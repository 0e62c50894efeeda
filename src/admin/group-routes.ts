import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { listAudit } from '../core/audit-query.ts';
import { notFound } from '../core/errors.ts';
import {
  changeGroupMembers,
  createGroup,
  deleteGroup,
  getGroup,
  listGroupMemberIds,
  updateGroup,
} from '../core/groups.ts';
import { requirePermission } from './auth.ts';
import { route, rowId, storableDate } from './handler.ts';

const nameInput = z.object({ displayName: z.string().min(1).max(256) }).strict();
const membersInput = z
  .object({ add: z.array(z.string()).max(1000).optional(), remove: z.array(z.string()).max(1000).optional() })
  .strict();
const groupsQuery = z.object({ source: z.enum(['local', 'scim', 'saml']).optional() });
const auditQuery = z.object({
  actor: z.string().max(320).optional(),
  target: z.string().max(100).optional(),
  action: z.string().max(100).optional(),
  since: storableDate.optional(),
  until: storableDate.optional(),
  before: rowId('an audit entry').optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

/** Local groups (IdP groups are read-only here: the IdP owns them) and the audit log. */
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
      const items = await ctx.sql`
      select g.id, g.source, g.display_name, g.external_id, g.created_at, g.updated_at,
             (select count(*)::int from group_members gm where gm.organization_id = g.organization_id and gm.group_id = g.id) as member_count
      from groups g where g.organization_id = ${p.organizationId} ${source ? ctx.sql`and g.source = ${source}` : ctx.sql``}
      order by lower(g.display_name), g.id limit 1000`;
      res.json({ items });
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

  router.get(
    '/audit',
    requirePermission('members:manage'),
    route(async (req, res, p) => {
      res.json(await listAudit(ctx.sql, p.organizationId, auditQuery.parse(req.query)));
    }),
  );

  return router;
}
