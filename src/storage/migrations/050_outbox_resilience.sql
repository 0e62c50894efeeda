-- An event whose internal handlers fail is retried on its own with backoff and, after the last
-- attempt, set aside as failed (until an admin retries it) instead of blocking the outbox.

alter table outbox
  add column dispatch_attempts integer not null default 0,
  add column dispatch_error text,
  -- Null: due now. Set after a failed attempt, to the time of the next one.
  add column dispatch_retry_at timestamptz,
  add column dispatch_failed_at timestamptz;

-- The dispatch query reads undispatched events in id order; failed events leave the index so
-- they never slow it down. (Backing-off events stay in it: there are only a few.)
drop index outbox_undispatched;
create index outbox_undispatched on outbox (id) where dispatched_at is null and dispatch_failed_at is null;

-- An organization's failed events, for the admin API.
create index outbox_dispatch_failed on outbox (organization_id, id) where dispatch_failed_at is not null;
