-- The reconciler's lanes (event dispatch, email, webhooks) never wait on each other, and no
-- transaction stays open across a network call.

-- A delivery is claimed with a lease: a short transaction sets who holds it and until when, the
-- send runs outside any transaction, and the outcome is written only under the same claim_id.
-- A lease that runs out (its instance died mid-send) makes the delivery claimable again: at least once.
alter table deliveries
  add column claimed_by text,
  add column claim_id uuid,
  add column locked_until timestamptz;

-- Each lane claims by kind, organization by organization (round robin), oldest due first.
drop index deliveries_due;
create index deliveries_pending on deliveries (kind, organization_id, next_attempt_at) where status = 'pending';

-- Circuit breaker: after consecutive failures an endpoint is paused until circuit_open_until;
-- its deliveries wait without counting attempts. Past that time one trial delivery is sent.
alter table webhook_endpoints
  add column consecutive_failures integer not null default 0,
  add column circuit_open_until timestamptz;

-- Dispatch takes undispatched events organization by organization, too.
drop index outbox_undispatched;
create index outbox_undispatched on outbox (organization_id, id) where dispatched_at is null and dispatch_failed_at is null;

-- New events wake the reconciler (LISTEN orgsync_outbox) instead of waiting for its next poll.
-- Once per statement; PostgreSQL folds the identical notifications of a transaction into one,
-- delivered at commit.
create function orgsync_outbox_notify() returns trigger language plpgsql as $$
begin
  perform pg_notify('orgsync_outbox', '');
  return null;
end
$$;
create trigger outbox_notify after insert on outbox for each statement execute function orgsync_outbox_notify();
