import { deliveryOutcomes } from '../metrics.ts';
import type { Db, Sql } from '../storage/database.ts';
import type { OutboxEvent } from './outbox.ts';

export interface Delivery {
  organizationId: string;
  id: string;
  eventId: string;
  kind: 'email' | 'webhook';
  target: string;
  attempts: number;
}

/**
 * Sends one delivery; throws to have it retried. Reads it needs go through `db`, the claiming
 * transaction: taking another pooled connection while holding one could starve the pool.
 */
export type Sender = (delivery: Delivery, event: OutboxEvent, db: Db) => Promise<void>;
export type Senders = Record<Delivery['kind'], Sender>;

export interface RetryPolicy {
  maxAttempts: number;
  /** Delay after the first failure; doubles each time, up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export type Outcome = 'delivered' | 'retrying' | 'dead';

/** Exponential backoff with ±20 % jitter, so many failing deliveries do not retry in lockstep. */
export function backoffMs(attempts: number, policy: RetryPolicy): number {
  const delay = Math.min(policy.baseDelayMs * 2 ** (attempts - 1), policy.maxDelayMs);
  return Math.round(delay * (0.8 + Math.random() * 0.4));
}

/** What a failed attempt (a delivery's, or an event's dispatch) leads to under the retry policy. */
export function afterFailure(
  previousAttempts: number,
  error: unknown,
  policy: RetryPolicy,
): { attempts: number; final: boolean; delayMs: number; message: string } {
  const attempts = previousAttempts + 1;
  const final = attempts >= policy.maxAttempts;
  return {
    attempts,
    final,
    delayMs: final ? 0 : backoffMs(attempts, policy),
    message: String((error as Error)?.message ?? error).slice(0, 1000),
  };
}

/**
 * Claims one due delivery and sends it while holding its row lock, so no other instance can send
 * it at the same time; the outcome is written in the same transaction. If the process dies
 * mid-send the transaction rolls back and the delivery is due again (at least once).
 * Returns null when nothing is due.
 */
export async function deliverNext(sql: Sql, senders: Senders, policy: RetryPolicy): Promise<Outcome | null> {
  return sql.begin(async (tx) => {
    const [row] = await tx<(Delivery & { type: string; payload: Record<string, unknown>; eventCreatedAt: Date })[]>`
      select d.organization_id, d.id, d.event_id, d.kind, d.target, d.attempts,
             o.type, o.payload, o.created_at as event_created_at
      from deliveries d
      join outbox o on o.organization_id = d.organization_id and o.id = d.event_id
      where d.status = 'pending' and d.next_attempt_at <= now()
      order by d.next_attempt_at
      limit 1
      for update of d skip locked`;
    if (!row) return null;
    const delivery: Delivery = {
      organizationId: row.organizationId,
      id: row.id,
      eventId: row.eventId,
      kind: row.kind,
      target: row.target,
      attempts: row.attempts,
    };
    const event: OutboxEvent = {
      organizationId: row.organizationId,
      id: row.eventId,
      type: row.type,
      payload: row.payload,
      createdAt: row.eventCreatedAt,
    };
    try {
      await senders[delivery.kind](delivery, event, tx);
      await tx`
        update deliveries set status = 'delivered', attempts = attempts + 1, delivered_at = now(), last_error = null
        where organization_id = ${delivery.organizationId} and id = ${delivery.id}`;
      return 'delivered';
    } catch (error) {
      const { attempts, final: dead, delayMs, message } = afterFailure(delivery.attempts, error, policy);
      await tx`
        update deliveries set attempts = ${attempts}, last_error = ${message},
          status = ${dead ? 'dead' : 'pending'},
          next_attempt_at = now() + make_interval(secs => ${delayMs / 1000})
        where organization_id = ${delivery.organizationId} and id = ${delivery.id}`;
      return dead ? 'dead' : 'retrying';
    }
  });
}

/** Sends due deliveries with `concurrency` workers until none is due (or `max` were tried). */
export async function deliverDue(
  sql: Sql,
  senders: Senders,
  policy: RetryPolicy,
  options: { concurrency: number; max?: number },
): Promise<Record<Outcome, number>> {
  const counts: Record<Outcome, number> = { delivered: 0, retrying: 0, dead: 0 };
  let budget = options.max ?? Infinity;
  const worker = async () => {
    while (budget-- > 0) {
      const outcome = await deliverNext(sql, senders, policy);
      if (!outcome) return;
      counts[outcome] += 1;
      deliveryOutcomes.inc({ outcome });
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return counts;
}
