import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { getGroup } from '../core/groups.ts';
import { notFound } from '../core/errors.ts';
import {
  createGroupRoleMapping,
  deleteGroupRoleMapping,
  listGroupRoleMappings,
  membersOfMappedGroups,
  updateGroupRoleMapping,
} from '../core/role-mapping.ts';
import { createWebhookEndpoint, deleteWebhookEndpoint, listWebhookEndpoints } from '../core/webhook-endpoints.ts';
import { retryDeadDeliveries, retryFailedEvents } from '../sync/outbox.ts';
import { requirePermission } from './auth.ts';
import { route, rowId } from './handler.ts';

const webhookInput = z
  .object({ url: z.string().min(1).max(2000), events: z.array(z.string().min(1).max(100)).max(50).optional() })
  .strict();
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
const deliveryQuery = z.object({
  status: z.enum(['pending', 'delivered', 'dead']).default('dead'),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  after: rowId('a delivery').optional(),
});
const eventQuery = z.object({
  status: z.enum(['failed', 'retrying']).default('failed'),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  after: rowId('an event').optional(),
});
const retryInput = z.object({ ids: z.array(rowId('a delivery or event')).max(1000).optional() }).strict();

/**
 * Webhook endpoints, their deliveries (dead letters and retry), events whose dispatch failed (and
 * retry) and group → role mappings.
 */
export function syncAdminRouter(ctx: AppContext): Router {
  const router = Router();

  router.get(
    '/webhooks',
    requirePermission('org:manage'),
    route(async (_req, res, p) => {
      res.json({ items: await listWebhookEndpoints(ctx.sql, p.organizationId) });
    }),
  );
  router.post(
    '/webhooks',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      const input = webhookInput.parse(req.body);
      const created = await createWebhookEndpoint(
        ctx.sql,
        ctx.config.serverSecret,
        { organizationId: p.organizationId, ...input },
        p.actor,
        { allowPrivateNetworks: ctx.config.reconciler.webhookAllowPrivateNetworks },
      );
      res.status(201).json(created);
    }),
  );
  router.delete(
    '/webhooks/:id',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      await deleteWebhookEndpoint(ctx.sql, p.organizationId, String(req.params.id), p.actor);
      res.status(204).end();
    }),
  );

  router.get(
    '/deliveries',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      const q = deliveryQuery.parse(req.query);
      const items = await ctx.sql`
      select d.id, d.event_id, o.type as event_type, d.kind, d.target, d.status, d.attempts, d.next_attempt_at,
             d.last_error, d.delivered_at, d.created_at
      from deliveries d join outbox o on o.organization_id = d.organization_id and o.id = d.event_id
      where d.organization_id = ${p.organizationId} and d.status = ${q.status}
        ${q.after ? ctx.sql`and d.id > ${q.after}` : ctx.sql``}
      order by d.id limit ${q.limit}`;
      res.json({ items, next: items.length === q.limit ? (items[items.length - 1]!.id as string) : null });
    }),
  );
  router.post(
    '/deliveries/retry',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      const { ids } = retryInput.parse(req.body ?? {});
      res.json({ retried: await retryDeadDeliveries(ctx.sql, p.organizationId, ids ?? null, p.actor) });
    }),
  );

  // Events whose internal handlers failed: still being retried, or set aside after the last attempt.
  router.get(
    '/events',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      const q = eventQuery.parse(req.query);
      const items = await ctx.sql`
      select id, type, payload - 'sealed' as data, created_at, dispatch_attempts as attempts, dispatch_error as last_error,
             dispatch_retry_at as next_attempt_at, dispatch_failed_at as failed_at
      from outbox
      where organization_id = ${p.organizationId}
        and ${
          q.status === 'failed'
            ? ctx.sql`dispatch_failed_at is not null`
            : ctx.sql`dispatched_at is null and dispatch_failed_at is null and dispatch_attempts > 0`
        }
        ${q.after ? ctx.sql`and id > ${q.after}` : ctx.sql``}
      order by id limit ${q.limit}`;
      res.json({ items, next: items.length === q.limit ? (items[items.length - 1]!.id as string) : null });
    }),
  );
  router.post(
    '/events/retry',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      const { ids } = retryInput.parse(req.body ?? {});
      res.json({ retried: await retryFailedEvents(ctx.sql, p.organizationId, ids ?? null, p.actor) });
    }),
  );

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
