import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  listWebhookEndpoints,
  setWebhookEndpointEnabled,
} from '../core/webhook-endpoints.ts';
import { notFound } from '../core/errors.ts';
import { retryDeadDeliveries, retryFailedEvents } from '../sync/outbox.ts';
import {
  listDeliveries,
  listDeliveryAttempts,
  listEndpointDeliveries,
  listStuckEvents,
} from '../sync/queue-listing.ts';
import { requirePermission } from './auth.ts';
import { route, rowId } from './handler.ts';

const webhookInput = z
  .object({ url: z.string().min(1).max(2000), events: z.array(z.string().min(1).max(100)).max(50).optional() })
  .strict();
const webhookChange = z.object({ enabled: z.boolean() }).strict();
const endpointDeliveryQuery = z.object({
  before: rowId('a delivery').optional(),
  limit: z.coerce.number().int().min(1).max(200).default(20),
});
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
 * The reconciler's side of the admin API: webhook endpoints, their deliveries (dead letters and
 * retry) and events whose dispatch failed (and retry).
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
  router.patch(
    '/webhooks/:id',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      const { enabled } = webhookChange.parse(req.body);
      res.json(await setWebhookEndpointEnabled(ctx.sql, p.organizationId, String(req.params.id), enabled, p.actor));
    }),
  );
  // One endpoint's deliveries in every status, newest first: what the console shows per endpoint.
  router.get(
    '/webhooks/:id/deliveries',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      const id = String(req.params.id);
      const q = endpointDeliveryQuery.parse(req.query);
      if (!(await listWebhookEndpoints(ctx.sql, p.organizationId)).some((e) => e.id === id)) {
        throw notFound('webhook endpoint', { id });
      }
      const items = await listEndpointDeliveries(ctx.sql, p.organizationId, id, q);
      res.json({ items, next: items.length === q.limit ? (items[items.length - 1]!.id as string) : null });
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
      const items = await listDeliveries(ctx.sql, p.organizationId, q);
      res.json({ items, next: items.length === q.limit ? (items[items.length - 1]!.id as string) : null });
    }),
  );
  router.get(
    '/deliveries/:id/attempts',
    requirePermission('org:manage'),
    route(async (req, res, p) => {
      const id = rowId('a delivery').parse(req.params.id);
      res.json({ items: await listDeliveryAttempts(ctx.sql, p.organizationId, id) });
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
      const items = await listStuckEvents(ctx.sql, p.organizationId, q);
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

  return router;
}
