import type { Db, Sql, Tx } from '../storage/database.ts';
import { systemActor, type Actor } from '../core/actor.ts';
import { recordAudit } from '../core/audit.ts';
import { activeOwnerEmails } from '../core/member-directory.ts';
import { EMAIL_EVENTS, WEBHOOK_EVENT_PREFIXES } from '../core/events.ts';
import { enabledWebhookEndpoints } from '../core/webhook-endpoints.ts';
import type { Logger } from '../log.ts';
import { afterFailure, type RetryPolicy } from './retry.ts';

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

export interface DispatchResult {
  dispatched: number;
  /** Deliveries (emails, webhook posts) the batch created: the sending lanes have work only then. */
  deliveries: number;
  /** The batch took as many events as it may: more may be due at once. */
  full: boolean;
  /** Events whose handlers failed, to be tried again after a backoff. */
  retrying: number;
  /** Events whose handlers failed for the last time: set aside until an admin retries them. */
  failed: number;
}

export interface DispatchOptions {
  /** Attempts and backoff of a failing event: the reconciler passes the delivery policy. */
  policy: RetryPolicy;
  log: Logger;
  limit?: number;
}

/** Events due for dispatch: not yet dispatched, not set aside, not backing off. */
const due = (db: Db) =>
  db`dispatched_at is null and dispatch_failed_at is null and (dispatch_retry_at is null or dispatch_retry_at <= now())`;

const reconciler = systemActor('sync', 'reconciler');

/**
 * Dispatches a batch of due events: runs the internal handlers and creates one delivery per email
 * and per subscribed webhook endpoint, all in one transaction with the events marked dispatched.
 * SKIP LOCKED lets several instances dispatch side by side without taking the same event; a
 * crash rolls the batch back for the next run.
 *
 * If the batch fails, one event is probably at fault (a handler bug, a bad payload), and taking the
 * same batch again would fail forever and block every organization's events. So its events are then
 * dispatched one at a time, each in its own transaction: the failing one is retried later with
 * backoff and, after `policy.maxAttempts`, set aside as failed; the others go on.
 */
export async function dispatchEvents(
  sql: Sql,
  handlers: EventHandler[],
  options: DispatchOptions,
): Promise<DispatchResult> {
  const { policy, log } = options;
  const limit = options.limit ?? 200;
  const result: DispatchResult = { dispatched: 0, deliveries: 0, full: false, retrying: 0, failed: 0 };
  let claimed: OutboxEvent[] = [];
  try {
    result.deliveries = await sql.begin(async (tx) => {
      claimed = await claimEvents(tx, limit);
      return dispatch(tx, handlers, claimed);
    });
    result.dispatched = claimed.length;
    result.full = claimed.length === limit;
    return result;
  } catch (error) {
    if (claimed.length === 0) throw error; // the claim itself failed: no event to blame
    log.warn({ err: error, events: claimed.length }, 'event batch failed; dispatching its events one at a time');
  }
  result.full = claimed.length === limit;
  for (const event of claimed) {
    const outcome = await dispatchOne(sql, handlers, event, policy, log);
    if (outcome) result[outcome.outcome] += 1;
    result.deliveries += outcome?.deliveries ?? 0;
  }
  return result;
}

/** Organizations scanned per batch (each an index probe); more with due events wait for a later batch. */
const MAX_ORGANIZATIONS = 1000;

/**
 * Locks a batch of due events, fair across organizations: it finds the organizations with
 * undispatched events (a skip scan of the `outbox_undispatched` index), takes the oldest of each
 * and interleaves them, so one organization's flood (a CSV import) does not hold up the others.
 * Within an organization events go in id order.
 */
export function claimEvents(tx: Tx, limit: number) {
  return tx<OutboxEvent[]>`
    with recursive orgs (organization_id, n) as (
      (select organization_id, 1 from outbox where dispatched_at is null and dispatch_failed_at is null
       order by organization_id limit 1)
      union all
      select (select o.organization_id from outbox o
              where o.dispatched_at is null and o.dispatch_failed_at is null and o.organization_id > orgs.organization_id
              order by o.organization_id limit 1), orgs.n + 1
      from orgs where orgs.organization_id is not null and orgs.n < ${MAX_ORGANIZATIONS}
    ), picked as (
      select e.organization_id, e.id, row_number() over (partition by e.organization_id order by e.id) as turn
      from orgs cross join lateral (
        select o.organization_id, o.id from outbox o
        where o.organization_id = orgs.organization_id and ${due(tx)}
        order by o.id limit ${limit}
      ) e
      order by turn, id limit ${limit}
    )
    select organization_id, id, type, payload, created_at from outbox
    where (organization_id, id) in (select organization_id, id from picked) and ${due(tx)}
    order by id for update skip locked`;
}

/** Runs the handlers, creates the deliveries and marks the events dispatched; answers the deliveries made. */
async function dispatch(tx: Tx, handlers: EventHandler[], events: OutboxEvent[]): Promise<number> {
  if (events.length === 0) return 0;
  for (const handle of handlers) await handle(tx, events);
  const deliveries = await createDeliveries(tx, events);
  await tx`
    update outbox set dispatched_at = clock_timestamp(), dispatch_retry_at = null
    where (organization_id, id) in (
      select * from unnest(${events.map((e) => e.organizationId)}::uuid[], ${events.map((e) => e.id)}::bigint[]))`;
  return deliveries;
}

/**
 * Dispatches one event of a failed batch, if it is still due and no other instance holds it. The
 * handlers run in a savepoint, so a failure is recorded on the row in the same transaction, under
 * the same lock: no other instance can try the event in between.
 */
async function dispatchOne(sql: Sql, handlers: EventHandler[], key: OutboxEvent, policy: RetryPolicy, log: Logger) {
  type Outcome = { outcome: 'dispatched' | 'retrying' | 'failed'; deliveries: number };
  return sql.begin(async (tx): Promise<Outcome | null> => {
    const [row] = await tx<(OutboxEvent & { dispatchAttempts: number })[]>`
      select organization_id, id, type, payload, created_at, dispatch_attempts from outbox
      where organization_id = ${key.organizationId} and id = ${key.id}
        and ${due(tx)}
      for update skip locked`;
    if (!row) return null;
    const { dispatchAttempts, ...event } = row;
    try {
      const deliveries = await tx.savepoint((sp) => dispatch(sp, handlers, [event]));
      return { outcome: 'dispatched', deliveries };
    } catch (error) {
      const { attempts, final: failed, delayMs, message } = afterFailure(dispatchAttempts, error, policy);
      await tx`
        update outbox set dispatch_attempts = ${attempts}, dispatch_error = ${message},
          dispatch_retry_at = case when ${failed}::boolean then null else now() + make_interval(secs => ${delayMs / 1000}) end,
          dispatch_failed_at = case when ${failed}::boolean then now() end
        where organization_id = ${event.organizationId} and id = ${event.id}`;
      const context = {
        organizationId: event.organizationId,
        eventId: event.id,
        eventType: event.type,
        attempts,
        err: error,
      };
      if (failed) {
        await recordAudit(
          tx,
          event.organizationId,
          reconciler,
          'event.dispatch_failed',
          { type: 'event', id: event.id },
          { eventType: event.type, attempts, error: message },
        );
        log.error(context, 'event dispatch failed for the last time; set aside until retried');
        return { outcome: 'failed', deliveries: 0 };
      }
      log.warn({ ...context, retryInMs: delayMs }, 'event dispatch failed; will retry');
      return { outcome: 'retrying', deliveries: 0 };
    }
  });
}

async function createDeliveries(tx: Tx, events: OutboxEvent[]): Promise<number> {
  const rows: { organizationId: string; eventId: string; kind: 'email' | 'webhook'; target: string }[] = [];
  for (const e of events) {
    // Only the types core/events.ts lists for emails: another may have been written dispatched.
    if (!EMAIL_EVENTS.has(e.type)) continue;
    if (e.type === 'invite.created' && typeof e.payload.email === 'string') {
      rows.push({ organizationId: e.organizationId, eventId: e.id, kind: 'email', target: e.payload.email });
    }
    if (e.type === 'domain.verification_lost') {
      for (const owner of await activeOwnerEmails(tx, e.organizationId)) {
        rows.push({ organizationId: e.organizationId, eventId: e.id, kind: 'email', target: owner });
      }
    }
  }
  const webhookEvents = events.filter((e) => WEBHOOK_EVENT_PREFIXES.some((p) => e.type.startsWith(p)));
  if (webhookEvents.length > 0) {
    const orgs = [...new Set(webhookEvents.map((e) => e.organizationId))];
    const endpoints = await enabledWebhookEndpoints(tx, orgs);
    for (const e of webhookEvents) {
      for (const ep of endpoints) {
        if (ep.organizationId === e.organizationId && (ep.events.includes('*') || ep.events.includes(e.type))) {
          rows.push({ organizationId: e.organizationId, eventId: e.id, kind: 'webhook', target: ep.id });
        }
      }
    }
  }
  if (rows.length === 0) return 0;
  await tx`
    insert into deliveries (organization_id, event_id, kind, target)
    select * from unnest(${rows.map((r) => r.organizationId)}::uuid[], ${rows.map((r) => r.eventId)}::bigint[],
                         ${rows.map((r) => r.kind)}::text[], ${rows.map((r) => r.target)}::text[])
    on conflict do nothing`;
  return rows.length;
}

/** What a webhook receiver gets: the event without anything sealed (e.g. an invitation token). */
export function publicEventBody(event: OutboxEvent): string {
  const { sealed: _sealed, ...data } = event.payload;
  return JSON.stringify({
    id: event.id,
    type: event.type,
    organizationId: event.organizationId,
    createdAt: event.createdAt,
    data,
  });
}

/** Removes the sealed part of an event's payload (e.g. an invitation token, once its email is sent). */
export async function forgetSealedPayload(db: Db, event: Pick<OutboxEvent, 'organizationId' | 'id'>): Promise<void> {
  await db`update outbox set payload = payload - 'sealed' where organization_id = ${event.organizationId} and id = ${event.id}`;
}

/** Puts dead deliveries back in the queue (all of the organization's, or the given ids). */
export async function retryDeadDeliveries(
  db: Db,
  organizationId: string,
  ids: string[] | null,
  actor: Actor,
): Promise<number> {
  const rows = await db`
    update deliveries set status = 'pending', attempts = 0, next_attempt_at = now(), last_error = null
    where organization_id = ${organizationId} and status = 'dead'
      ${ids ? db`and id = any(${ids}::bigint[])` : db``}
    returning id`;
  if (rows.length > 0) {
    await recordAudit(db, organizationId, actor, 'deliveries.retried', null, { ids: rows.map((r) => r.id as string) });
  }
  return rows.length;
}

/** Puts failed events back to be dispatched (all of the organization's, or the given ids). */
export async function retryFailedEvents(
  db: Db,
  organizationId: string,
  ids: string[] | null,
  actor: Actor,
): Promise<number> {
  const rows = await db`
    update outbox set dispatch_failed_at = null, dispatch_attempts = 0, dispatch_retry_at = null, dispatch_error = null
    where organization_id = ${organizationId} and dispatch_failed_at is not null
      ${ids ? db`and id = any(${ids}::bigint[])` : db``}
    returning id`;
  if (rows.length > 0) {
    await recordAudit(db, organizationId, actor, 'events.retried', null, { ids: rows.map((r) => r.id as string) });
  }
  return rows.length;
}

/** How long dispatched events (and their deliveries) stay, for inspection and support questions. */
export const OUTBOX_RETENTION_DAYS = 30;
const PRUNE_BATCH = 1000;

/**
 * Deletes events dispatched more than `retentionDays` ago whose deliveries were all delivered,
 * and those deliveries with them (on delete cascade). An event still owing something stays:
 * undispatched, failed, or with a pending or dead delivery (a dead letter can still be retried).
 * Walks the outbox in id order, one short statement per batch of events so a run never holds
 * locks for long, and stops at the first batch reaching events younger than the retention.
 */
export async function pruneOutbox(
  sql: Sql,
  retentionDays = OUTBOX_RETENTION_DAYS,
): Promise<{ events: number; deliveries: number }> {
  const pruned = { events: 0, deliveries: 0 };
  let after = '0';
  for (;;) {
    const [batch] = await sql<{ events: number; deliveries: number; lastId: string | null; more: boolean }[]>`
      with scanned as (
        select organization_id, id, created_at, dispatched_at from outbox where id > ${after} order by id limit ${PRUNE_BATCH}
      ), gone as (
        delete from outbox o using scanned s
        where o.organization_id = s.organization_id and o.id = s.id
          and s.dispatched_at < now() - make_interval(days => ${retentionDays})
          and not exists (
            select 1 from deliveries d
            where d.organization_id = o.organization_id and d.event_id = o.id and d.status <> 'delivered')
        returning o.organization_id, o.id
      )
      select (select count(*) from gone)::int as events,
             -- The statement's snapshot still sees the deliveries the cascade removes.
             (select count(*) from deliveries d join gone g on d.organization_id = g.organization_id and d.event_id = g.id)::int as deliveries,
             (select max(id) from scanned)::text as last_id,
             (select count(*) = ${PRUNE_BATCH} and max(created_at) < now() - make_interval(days => ${retentionDays}) from scanned) as more`;
    pruned.events += batch!.events;
    pruned.deliveries += batch!.deliveries;
    if (!batch!.more) return pruned;
    after = batch!.lastId!;
  }
}

/**
 * Deletes delivery attempts made more than `retentionDays` ago. Those of pruned deliveries went
 * with them (on delete cascade); this bounds the others: a dead letter retried again and again, a
 * delivery whose event still owes something. Each delivery keeps its latest attempt, which tells
 * what the receiver last answered (the delivery lists show it). One short statement per batch.
 */
export async function pruneDeliveryAttempts(sql: Sql, retentionDays = OUTBOX_RETENTION_DAYS): Promise<number> {
  let pruned = 0;
  for (;;) {
    const [batch] = await sql<{ count: number }[]>`
      with old as (
        select a.organization_id, a.delivery_id, a.id from delivery_attempts a
        where a.at < now() - make_interval(days => ${retentionDays})
          and exists (
            select 1 from delivery_attempts later
            where later.organization_id = a.organization_id and later.delivery_id = a.delivery_id and later.id > a.id)
        limit ${PRUNE_BATCH}
      ), gone as (
        delete from delivery_attempts a using old
        where a.organization_id = old.organization_id and a.delivery_id = old.delivery_id and a.id = old.id
        returning 1
      )
      select count(*)::int as count from gone`;
    pruned += batch!.count;
    if (batch!.count < PRUNE_BATCH) return pruned;
  }
}

/** How far behind the outbox is, for monitoring: events waiting for dispatch and deliveries due. */
export interface OutboxBacklog {
  /** Events not yet dispatched (set-aside failures excluded). */
  undispatched: number;
  /** Age of the oldest of them, in seconds (0 when there is none). */
  lagSeconds: number;
  /** Deliveries waiting to be sent or retried. */
  pendingDeliveries: number;
}

export async function outboxBacklog(db: Db): Promise<OutboxBacklog> {
  const [row] = await db<OutboxBacklog[]>`
    select
      (select count(*) from outbox where dispatched_at is null and dispatch_failed_at is null)::int as undispatched,
      coalesce(extract(epoch from now() - (
        select created_at from outbox where dispatched_at is null and dispatch_failed_at is null order by id limit 1
      )), 0)::float8 as lag_seconds,
      (select count(*) from deliveries where status = 'pending')::int as pending_deliveries`;
  return row!;
}
