import type { Db, Sql, Tx } from '../storage/database.ts';
import type { Actor } from '../core/actor.ts';
import { recordAudit } from '../core/audit.ts';

export interface OutboxEvent {
  organizationId: string;
  /** bigint, as text */
  id: string;
  type: string;
  payload: Record<string, unknown>;
  createdAt: Date;
}

/** Work an event causes inside orgsync (e.g. recomputing roles), run in the dispatch transaction. */
export type EventHandler = (tx: Tx, events: OutboxEvent[]) => Promise<void>;

/** Event types an organization's webhooks can receive. */
export const WEBHOOK_EVENT_PREFIXES = ['member.', 'invite.', 'group.'];

/**
 * Dispatches a batch of new events: runs the internal handlers and creates one delivery per email
 * and per subscribed webhook endpoint, all in one transaction with the events marked dispatched.
 * SKIP LOCKED lets several instances dispatch side by side without taking the same event; a
 * crash rolls the batch back for the next run.
 */
export async function dispatchEvents(sql: Sql, handlers: EventHandler[], limit = 200): Promise<number> {
  return sql.begin(async (tx) => {
    const events = await tx<OutboxEvent[]>`
      select organization_id, id, type, payload, created_at from outbox
      where dispatched_at is null order by id limit ${limit} for update skip locked`;
    if (events.length === 0) return 0;
    for (const handle of handlers) await handle(tx, events);
    await createDeliveries(tx, events);
    await tx`
      update outbox set dispatched_at = now()
      where (organization_id, id) in (
        select * from unnest(${events.map((e) => e.organizationId)}::uuid[], ${events.map((e) => e.id)}::bigint[]))`;
    return events.length;
  });
}

async function createDeliveries(tx: Tx, events: OutboxEvent[]): Promise<void> {
  const rows: { organizationId: string; eventId: string; kind: 'email' | 'webhook'; target: string }[] = [];
  for (const e of events) {
    if (e.type === 'invite.created' && typeof e.payload.email === 'string') {
      rows.push({ organizationId: e.organizationId, eventId: e.id, kind: 'email', target: e.payload.email });
    }
  }
  const webhookEvents = events.filter((e) => WEBHOOK_EVENT_PREFIXES.some((p) => e.type.startsWith(p)));
  if (webhookEvents.length > 0) {
    const orgs = [...new Set(webhookEvents.map((e) => e.organizationId))];
    const endpoints = await tx<{ organizationId: string; id: string; events: string[] }[]>`
      select organization_id, id, events from webhook_endpoints where organization_id = any(${orgs}::uuid[]) and enabled`;
    for (const e of webhookEvents) {
      for (const ep of endpoints) {
        if (ep.organizationId === e.organizationId && (ep.events.includes('*') || ep.events.includes(e.type))) {
          rows.push({ organizationId: e.organizationId, eventId: e.id, kind: 'webhook', target: ep.id });
        }
      }
    }
  }
  if (rows.length === 0) return;
  await tx`
    insert into deliveries (organization_id, event_id, kind, target)
    select * from unnest(${rows.map((r) => r.organizationId)}::uuid[], ${rows.map((r) => r.eventId)}::bigint[],
                         ${rows.map((r) => r.kind)}::text[], ${rows.map((r) => r.target)}::text[])
    on conflict do nothing`;
}

/** What a webhook receiver gets: the event without anything sealed (e.g. an invitation token). */
export function publicEventBody(event: OutboxEvent): string {
  const { sealed: _sealed, ...data } = event.payload;
  return JSON.stringify({ id: event.id, type: event.type, organizationId: event.organizationId, createdAt: event.createdAt, data });
}

/** Puts dead deliveries back in the queue (all of the organization's, or the given ids). */
export async function retryDeadDeliveries(db: Db, organizationId: string, ids: string[] | null, actor: Actor): Promise<number> {
  const rows = await db`
    update deliveries set status = 'pending', attempts = 0, next_attempt_at = now(), last_error = null
    where organization_id = ${organizationId} and status = 'dead'
      ${ids ? db`and id = any(${ids}::bigint[])` : db``}
    returning id`;
  if (rows.length > 0) {
    await recordAudit(db, organizationId, actor, 'deliveries.retried', null, { ids: rows.map((r) => r.id) });
  }
  return rows.length;
}
