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
import { apiRoutes } from './api-routes.ts';
import { route, rowId } from './handler.ts';
import { dateTime, page, rowIdText, uuid } from './schemas.ts';

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

const webhook = z.strictObject({
  organizationId: uuid,
  id: uuid,
  url: z.string(),
  events: z.array(z.string()),
  enabled: z.boolean(),
  createdAt: dateTime,
});
const endpointDelivery = z.strictObject({
  id: rowIdText,
  eventId: rowIdText,
  eventType: z.string(),
  status: z.enum(['pending', 'delivered', 'dead']),
  attempts: z.number().int(),
  nextAttemptAt: dateTime,
  lastError: z.string().nullable(),
  responseStatus: z.number().int().nullable().describe("the receiver's HTTP status on the latest attempt"),
  deliveredAt: dateTime.nullable(),
  createdAt: dateTime,
});
const delivery = endpointDelivery.extend({ kind: z.enum(['email', 'webhook']), target: z.string() });
const deliveryAttempt = z.strictObject({
  id: rowIdText,
  at: dateTime,
  responseStatus: z.number().int().nullable(),
  error: z.string().nullable(),
});
const stuckEvent = z.strictObject({
  id: rowIdText,
  type: z.string(),
  data: z.record(z.string(), z.unknown()).describe("the event's payload"),
  createdAt: dateTime,
  attempts: z.number().int(),
  lastError: z.string().nullable(),
  nextAttemptAt: dateTime.nullable(),
  failedAt: dateTime.nullable(),
});
const retried = z.strictObject({ retried: z.number().int() });

/**
 * The reconciler's side of the admin API: webhook endpoints, their deliveries (dead letters and
 * retry) and events whose dispatch failed (and retry).
 */
export function syncAdminRouter(ctx: AppContext): Router {
  const router = Router();
  const api = apiRoutes(router);

  api.get(
    '/webhooks',
    {
      summary: 'Webhook endpoints, with their circuit breaker state',
      permission: 'org:manage',
      responses: {
        200: z.strictObject({
          items: z.array(
            webhook.extend({
              consecutiveFailures: z.number().int(),
              circuitOpenUntil: dateTime.nullable().describe('while in the future, deliveries wait'),
            }),
          ),
        }),
      },
    },
    route(async (_req, res, p) => {
      res.json({ items: await listWebhookEndpoints(ctx.sql, p.organizationId) });
    }),
  );
  api.post(
    '/webhooks',
    {
      summary: 'Add an endpoint (the signing secret is shown once)',
      permission: 'org:manage',
      body: webhookInput,
      responses: { 201: webhook.extend({ secret: z.string() }) },
    },
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
  api.patch(
    '/webhooks/:id',
    {
      summary: 'Enable or disable an endpoint',
      permission: 'org:manage',
      body: webhookChange,
      responses: { 200: webhook },
    },
    route(async (req, res, p) => {
      const { enabled } = webhookChange.parse(req.body);
      res.json(await setWebhookEndpointEnabled(ctx.sql, p.organizationId, String(req.params.id), enabled, p.actor));
    }),
  );
  // One endpoint's deliveries in every status, newest first: what the console shows per endpoint.
  api.get(
    '/webhooks/:id/deliveries',
    {
      summary: "An endpoint's deliveries, newest first, with the last HTTP response code (pass `next` as `before`)",
      permission: 'org:manage',
      query: endpointDeliveryQuery,
      responses: { 200: page(endpointDelivery, rowIdText) },
    },
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
  api.delete(
    '/webhooks/:id',
    { summary: 'Delete an endpoint', permission: 'org:manage', responses: { 204: null } },
    route(async (req, res, p) => {
      await deleteWebhookEndpoint(ctx.sql, p.organizationId, String(req.params.id), p.actor);
      res.status(204).end();
    }),
  );

  api.get(
    '/deliveries',
    {
      summary: 'Email and webhook deliveries (dead letters by default)',
      permission: 'org:manage',
      query: deliveryQuery,
      responses: { 200: page(delivery, rowIdText) },
    },
    route(async (req, res, p) => {
      const q = deliveryQuery.parse(req.query);
      const items = await listDeliveries(ctx.sql, p.organizationId, q);
      res.json({ items, next: items.length === q.limit ? (items[items.length - 1]!.id as string) : null });
    }),
  );
  api.get(
    '/deliveries/:id/attempts',
    {
      summary: 'Every attempt of a delivery, oldest first: time, HTTP response code, error',
      permission: 'org:manage',
      responses: { 200: z.strictObject({ items: z.array(deliveryAttempt) }) },
    },
    route(async (req, res, p) => {
      const id = rowId('a delivery').parse(req.params.id);
      res.json({ items: await listDeliveryAttempts(ctx.sql, p.organizationId, id) });
    }),
  );
  api.post(
    '/deliveries/retry',
    {
      summary: 'Put dead letters (all, or these ids) back in the queue',
      permission: 'org:manage',
      body: retryInput,
      responses: { 200: retried },
    },
    route(async (req, res, p) => {
      const { ids } = retryInput.parse(req.body ?? {});
      res.json({ retried: await retryDeadDeliveries(ctx.sql, p.organizationId, ids ?? null, p.actor) });
    }),
  );

  // Events whose internal handlers failed: still being retried, or set aside after the last attempt.
  api.get(
    '/events',
    {
      summary: 'Events whose dispatch failed (status=failed) or is being retried (status=retrying)',
      permission: 'org:manage',
      query: eventQuery,
      responses: { 200: page(stuckEvent, rowIdText) },
    },
    route(async (req, res, p) => {
      const q = eventQuery.parse(req.query);
      const items = await listStuckEvents(ctx.sql, p.organizationId, q);
      res.json({ items, next: items.length === q.limit ? (items[items.length - 1]!.id as string) : null });
    }),
  );
  api.post(
    '/events/retry',
    {
      summary: 'Dispatch failed events (all, or these ids) again',
      permission: 'org:manage',
      body: retryInput,
      responses: { 200: retried },
    },
    route(async (req, res, p) => {
      const { ids } = retryInput.parse(req.body ?? {});
      res.json({ retried: await retryFailedEvents(ctx.sql, p.organizationId, ids ?? null, p.actor) });
    }),
  );

  return router;
}
