import { inTransaction, type Db, type Fragment, type Sql, type Tx } from '../storage/database.ts';
import { plannedEachRun } from '../storage/statements.ts';
import type { OutboxEvent } from './outbox.ts';
import { afterFailure, type RetryPolicy } from './retry.ts';

export interface Delivery {
  organizationId: string;
  id: string;
  eventId: string;
  kind: 'email' | 'webhook';
  target: string;
  attempts: number;
}

/** Sends one kind of delivery. Nothing holds a transaction or a pooled connection while it sends. */
export interface Sender {
  /** The longest a send may take; a claim's lease outlasts it. */
  timeoutMs: number;
  /**
   * Sends one delivery; throws to have it retried. A webhook answers (or its error carries) the
   * receiver's `responseStatus`, kept with the attempt.
   */
  send(delivery: Delivery, event: OutboxEvent): Promise<SendResult | void>;
  /** Runs in the short transaction that records the delivery as delivered (e.g. wiping a secret the send used). */
  delivered?(tx: Tx, delivery: Delivery, event: OutboxEvent): Promise<void>;
}
export type Senders = Record<Delivery['kind'], Sender>;
export interface SendResult {
  responseStatus?: number;
}

/** The HTTP status a failed send got, when an answer came (see webhooks.ts WebhookAnswerError). */
function responseStatusOf(error: unknown): number | null {
  const status = (error as { responseStatus?: unknown } | null)?.responseStatus;
  return typeof status === 'number' ? status : null;
}

/** Pauses a webhook endpoint after `failures` failures in a row, for `cooldownMs`. */
export interface BreakerPolicy {
  failures: number;
  cooldownMs: number;
}

export type Outcome = 'delivered' | 'retrying' | 'dead';

/** A delivery leased to this instance, with the event it carries. */
export interface Claim {
  delivery: Delivery;
  event: OutboxEvent;
  claimId: string;
}

export interface ClaimRequest {
  kind: Delivery['kind'];
  /** Free send slots: at most this many are claimed. */
  limit: number;
  /** Who claims (kept on the row for inspection). */
  claimedBy: string;
  leaseMs: number;
  /** Per target (webhook endpoint) sends this instance may still start; targets not listed get `perTarget`. */
  targetSlots?: Map<string, number>;
  perTarget?: number;
  /** Webhooks: skip endpoints whose circuit is open; past the cool-down, one trial at a time. */
  breaker?: BreakerPolicy;
}

/** Organizations (webhooks: endpoints) a claim scans, each an index probe; more wait for a later claim. */
const MAX_QUEUES = 1000;

/**
 * Leases up to `limit` due deliveries of one kind, in one short statement. Fair across
 * organizations: it finds the organizations with pending emails (a skip scan of the
 * `deliveries_pending_email` index), takes the oldest due ones of each and interleaves them, so
 * one organization's flood does not starve the others. Webhooks go endpoint by endpoint instead
 * (a skip scan of `deliveries_pending_webhook`), taking of each no more than its free slots
 * (`perTarget`, `targetSlots`) and nothing of a full one: a claim reads what it takes, not the
 * backlog. Webhook deliveries of an endpoint whose circuit is open are left alone (no attempt
 * counted); past its cool-down the circuit is half-open: one delivery is claimed as a trial and
 * the cool-down re-armed until the trial's outcome decides. A row another instance claims at the
 * same moment is re-checked under its lock and skipped.
 */
export async function claimDeliveries(sql: Sql, request: ClaimRequest): Promise<Claim[]> {
  const { kind, limit } = request;
  if (limit <= 0) return [];
  const breaker = request.breaker;
  // Planned at each run: the queue swings from empty to thousands between two ANALYZEs.
  const rows = await plannedEachRun(sql<
    (Delivery & OutboxEvent & { claimId: string; eventCreatedAt: Date; type: string })[]
  >`
    with recursive ${kind === 'webhook' ? byTarget(sql, request) : byOrganization(sql, limit)},
    chosen as (
      select organization_id, id, target, trial from (
        select c.*, row_number() over (partition by c.organization_id order by c.next_attempt_at, c.id) as turn
        from candidates c
      ) c
      order by turn, next_attempt_at, id limit ${limit}
    ), claimed as (
      update deliveries d set claimed_by = ${request.claimedBy}, claim_id = gen_random_uuid(),
        locked_until = now() + make_interval(secs => ${request.leaseMs / 1000})
      from chosen
      where d.organization_id = chosen.organization_id and d.id = chosen.id
        and d.status = 'pending' and (d.locked_until is null or d.locked_until <= now())
      returning d.organization_id, d.id, d.event_id, d.kind, d.target, d.attempts, d.claim_id, chosen.trial
    )${
      breaker
        ? sql`, rearmed as (
      update webhook_endpoints e set circuit_open_until = now() + make_interval(secs => ${breaker.cooldownMs / 1000})
      from (select distinct organization_id, target from claimed where trial) t
      where e.organization_id = t.organization_id and e.id::text = t.target
    )`
        : sql``
    }
    select c.organization_id, c.id, c.event_id, c.kind, c.target, c.attempts, c.claim_id,
           o.type, o.payload, o.created_at as event_created_at
    from claimed c join outbox o on o.organization_id = c.organization_id and o.id = c.event_id`);
  return rows.map((row) => ({
    claimId: row.claimId,
    delivery: {
      organizationId: row.organizationId,
      id: row.id,
      eventId: row.eventId,
      kind: row.kind,
      target: row.target,
      attempts: row.attempts,
    },
    event: {
      organizationId: row.organizationId,
      id: row.eventId,
      type: row.type,
      payload: row.payload,
      createdAt: row.eventCreatedAt,
    },
  }));
}

/** Due and not leased: a pending delivery a claim may take. */
const claimable = (sql: Sql) =>
  sql`d.status = 'pending' and d.next_attempt_at <= now() and (d.locked_until is null or d.locked_until <= now())`;

/**
 * `candidates`: the oldest `limit` claimable emails of each organization with pending ones. The
 * kind is written in the text, not passed, so that even a generic plan may take the kind's own
 * index; the skip scan orders by next_attempt_at too, which only that index gives (by
 * organization alone, the primary key would do, reading every webhook delivery on the way).
 */
function byOrganization(sql: Sql, limit: number): Fragment {
  return sql`orgs (organization_id, n) as (
      (select organization_id, 1 from deliveries where kind = 'email' and status = 'pending'
       order by organization_id, next_attempt_at limit 1)
      union all
      select (select d.organization_id from deliveries d
              where d.kind = 'email' and d.status = 'pending' and d.organization_id > orgs.organization_id
              order by d.organization_id, d.next_attempt_at limit 1), orgs.n + 1
      from orgs where orgs.organization_id is not null and orgs.n < ${MAX_QUEUES}
    ), candidates as (
      select c.* from orgs cross join lateral (
        select d.organization_id, d.id, d.target, d.next_attempt_at, false as trial
        from deliveries d
        where d.kind = 'email' and d.organization_id = orgs.organization_id and ${claimable(sql)}
        order by d.next_attempt_at, d.id limit ${limit}
      ) c
    )`;
}

/**
 * `candidates`: of each webhook endpoint with pending deliveries (organization by organization),
 * the oldest claimable ones, as many as its free slots (one as a trial while its circuit is
 * half-open); none of a full endpoint or of one whose circuit is open. The kind is in the text,
 * as for emails.
 */
function byTarget(sql: Sql, request: ClaimRequest): Fragment {
  const { limit, breaker } = request;
  const full = [...(request.targetSlots ?? [])].filter(([, n]) => n <= 0).map(([t]) => t);
  const partial = [...(request.targetSlots ?? [])].filter(([, n]) => n > 0);
  const trial = breaker ? sql`coalesce(e.consecutive_failures >= ${breaker.failures}, false)` : sql`false`;
  return sql`targets (organization_id, target, n) as (
      (select organization_id, target, 1 from deliveries where kind = 'webhook' and status = 'pending'
       order by organization_id, target limit 1)
      union all
      select next.organization_id, next.target, targets.n + 1
      from targets cross join lateral (
        select d.organization_id, d.target from deliveries d
        where d.kind = 'webhook' and d.status = 'pending'
          and (d.organization_id, d.target) > (targets.organization_id, targets.target)
        order by d.organization_id, d.target limit 1
      ) next
      where targets.n < ${MAX_QUEUES}
    ), candidates as (
      select c.* from targets t
      left join unnest(${partial.map(([target]) => target)}::text[], ${partial.map(([, slots]) => slots)}::int[])
        as s (target, slots) on s.target = t.target
      ${breaker ? sql`left join webhook_endpoints e on e.organization_id = t.organization_id and e.id::text = t.target` : sql``}
      cross join lateral (
        select d.organization_id, d.id, d.target, d.next_attempt_at, ${trial} as trial
        from deliveries d
        where d.kind = 'webhook' and d.organization_id = t.organization_id and d.target = t.target and ${claimable(sql)}
        order by d.next_attempt_at, d.id
        limit least(${limit}, case when ${trial} then 1 else coalesce(s.slots, ${request.perTarget ?? limit}) end)
      ) c
      where t.target <> all(${full}::text[])
        ${breaker ? sql`and (e.circuit_open_until is null or e.circuit_open_until <= now())` : sql``}
    )`;
}

/**
 * Sends a claimed delivery outside any transaction, then records the outcome, only if the lease
 * is still this claim's (a lease that ran out may have been claimed again elsewhere): the
 * delivery, its attempt and, for a webhook, its endpoint's circuit breaker in one statement (one
 * round trip while the send's slot waits), or in a short transaction with the sender's
 * `delivered` step. Returns null when the lease was lost.
 */
export async function sendClaimed(
  sql: Sql,
  claim: Claim,
  sender: Sender,
  policy: RetryPolicy,
  breaker?: BreakerPolicy,
): Promise<Outcome | null> {
  const { delivery, event } = claim;
  const tracksBreaker = breaker && delivery.kind === 'webhook' ? breaker : undefined;
  let failure: unknown;
  let responseStatus: number | null = null;
  try {
    responseStatus = (await sender.send(delivery, event))?.responseStatus ?? null;
  } catch (error) {
    failure = error ?? new Error('send failed');
    responseStatus = responseStatusOf(error);
  }
  if (failure === undefined) {
    const recorded = async (db: Db) => (await deliveredSteps(db, claim, responseStatus, tracksBreaker)).length > 0;
    if (!sender.delivered) return (await recorded(sql)) ? 'delivered' : null;
    return inTransaction(sql, async (tx) => {
      if (!(await recorded(tx))) return null;
      await sender.delivered?.(tx, delivery, event);
      return 'delivered';
    });
  }
  const { attempts, final: dead, delayMs, message } = afterFailure(delivery.attempts, failure, policy);
  const failed = { attempts, dead, delayMs, message, responseStatus };
  const rows = await failedSteps(sql, claim, failed, tracksBreaker);
  if (rows.length === 0) return null;
  return dead ? 'dead' : 'retrying';
}

/** The claim's own delivery row, while the lease is still this claim's. */
const leased = (db: Db, { delivery, claimId }: Claim) =>
  db`organization_id = ${delivery.organizationId} and id = ${delivery.id} and claim_id = ${claimId}`;

/** The webhook endpoint of the claim's delivery. */
const endpointOf = (db: Db, { delivery }: Claim) =>
  db`organization_id = ${delivery.organizationId} and id::text = ${delivery.target}`;

/** One row per attempt: what the receiver answered (the HTTP status, when one came) and the error. */
const attemptStep = (db: Db, responseStatus: number | null, error: string | null) => db`
  attempt as (
    insert into delivery_attempts (organization_id, delivery_id, response_status, error)
    select organization_id, id, ${responseStatus}, ${error} from outcome
  )`;

/** Marks the delivery delivered and closes its endpoint's circuit; selects the delivery's id, none if the lease was lost. */
function deliveredSteps(db: Db, claim: Claim, responseStatus: number | null, breaker?: BreakerPolicy): Fragment {
  return db`
    with outcome as (
      update deliveries set status = 'delivered', attempts = attempts + 1, delivered_at = now(), last_error = null,
        claimed_by = null, claim_id = null, locked_until = null
      where ${leased(db, claim)} returning organization_id, id
    ), ${attemptStep(db, responseStatus, null)}${
      breaker
        ? db`, closed as (
      update webhook_endpoints set consecutive_failures = 0, circuit_open_until = null
      where ${endpointOf(db, claim)} and (consecutive_failures <> 0 or circuit_open_until is not null)
        and exists (select from outcome)
    )`
        : db``
    }
    select id from outcome`;
}

/** Schedules the next attempt (or gives up) and counts the failure on the endpoint's circuit. */
function failedSteps(
  db: Db,
  claim: Claim,
  failed: { attempts: number; dead: boolean; delayMs: number; message: string; responseStatus: number | null },
  breaker?: BreakerPolicy,
): Fragment {
  return db`
    with outcome as (
      update deliveries set attempts = ${failed.attempts}, last_error = ${failed.message},
        status = ${failed.dead ? 'dead' : 'pending'},
        next_attempt_at = now() + make_interval(secs => ${failed.delayMs / 1000}),
        claimed_by = null, claim_id = null, locked_until = null
      where ${leased(db, claim)} returning organization_id, id
    ), ${attemptStep(db, failed.responseStatus, failed.message)}${
      breaker
        ? db`, opened as (
      update webhook_endpoints set consecutive_failures = consecutive_failures + 1,
        circuit_open_until = case when consecutive_failures + 1 >= ${breaker.failures}
          then now() + make_interval(secs => ${breaker.cooldownMs / 1000}) else circuit_open_until end
      where ${endpointOf(db, claim)} and exists (select from outcome)
    )`
        : db``
    }
    select id from outcome`;
}
