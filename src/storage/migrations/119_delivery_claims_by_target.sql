-- A claim of due deliveries read every pending delivery of an organization: the rows of one
-- dispatch share their next_attempt_at, so ordering them by (next_attempt_at, id) sorted them
-- all, and the deliveries of a webhook endpoint that was full (its sends in flight) or paused
-- (its circuit open) were read and skipped one by one. Under a burst of 20,000 member events a
-- claim took 17 ms while the endpoint's two sends waited on it. Now an email claim walks an
-- organization's due emails in the order it takes them, and a webhook claim goes endpoint by
-- endpoint (a skip scan over the pending deliveries' targets), reading only what it takes. One
-- index per kind, so that whatever the statistics say, each claim has one index that fits it.
drop index deliveries_pending;
create index deliveries_pending_email on deliveries (organization_id, next_attempt_at, id)
  where status = 'pending' and kind = 'email';
create index deliveries_pending_webhook on deliveries (organization_id, target, next_attempt_at, id)
  where status = 'pending' and kind = 'webhook';
