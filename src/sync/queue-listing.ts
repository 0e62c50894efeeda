import type { Db } from '../storage/database.ts';

/** A page of the queue: rows after the id `after`, in id order. */
export interface QueuePage<Status> {
  status: Status;
  limit: number;
  after?: string;
}

/** The organization's deliveries in one status (e.g. the dead letters), with their event's type. */
export function listDeliveries(db: Db, organizationId: string, page: QueuePage<'pending' | 'delivered' | 'dead'>) {
  return db`
    select d.id, d.event_id, o.type as event_type, d.kind, d.target, d.status, d.attempts, d.next_attempt_at,
           d.last_error, ${lastResponseStatus(db)}, d.delivered_at, d.created_at
    from deliveries d join outbox o on o.organization_id = d.organization_id and o.id = d.event_id
    where d.organization_id = ${organizationId} and d.status = ${page.status}
      ${page.after ? db`and d.id > ${page.after}` : db``}
    order by d.id limit ${page.limit}`;
}

/** The HTTP status the receiver answered on the delivery's latest attempt (null: none yet, or no answer). */
const lastResponseStatus = (db: Db) => db`(
  select a.response_status from delivery_attempts a
  where a.organization_id = d.organization_id and a.delivery_id = d.id
  order by a.id desc limit 1) as response_status`;

/** A webhook endpoint's deliveries in every status, newest first, keyset-paged by id (`before`). */
export function listEndpointDeliveries(
  db: Db,
  organizationId: string,
  endpointId: string,
  page: { before?: string; limit: number },
) {
  return db`
    select d.id, d.event_id, o.type as event_type, d.status, d.attempts, d.next_attempt_at, d.last_error,
           ${lastResponseStatus(db)}, d.delivered_at, d.created_at
    from deliveries d join outbox o on o.organization_id = d.organization_id and o.id = d.event_id
    where d.organization_id = ${organizationId} and d.kind = 'webhook' and d.target = ${endpointId}
      ${page.before ? db`and d.id < ${page.before}` : db``}
    order by d.id desc limit ${page.limit}`;
}

/** Every attempt of one delivery, oldest first: when, the receiver's HTTP status, the error. */
export function listDeliveryAttempts(db: Db, organizationId: string, deliveryId: string) {
  return db`
    select id, at, response_status, error from delivery_attempts
    where organization_id = ${organizationId} and delivery_id = ${deliveryId}
    order by id limit 100`;
}

/**
 * The organization's events whose internal handlers failed: still being retried (`retrying`),
 * or set aside after the last attempt (`failed`). The sealed part of a payload is never shown.
 */
export function listStuckEvents(db: Db, organizationId: string, page: QueuePage<'failed' | 'retrying'>) {
  return db`
    select id, type, payload - 'sealed' as data, created_at, dispatch_attempts as attempts, dispatch_error as last_error,
           dispatch_retry_at as next_attempt_at, dispatch_failed_at as failed_at
    from outbox
    where organization_id = ${organizationId}
      and ${
        page.status === 'failed'
          ? db`dispatch_failed_at is not null`
          : db`dispatched_at is null and dispatch_failed_at is null and dispatch_attempts > 0`
      }
      ${page.after ? db`and id > ${page.after}` : db``}
    order by id limit ${page.limit}`;
}
