-- Every attempt of a delivery, so an admin can see what the receiver answered each time:
-- its HTTP response code (null when no answer came: refused, unresolvable, timed out, or an email)
-- and the error. Owned by sync/; pruned with its delivery.
create table delivery_attempts (
  organization_id uuid not null,
  delivery_id bigint not null,
  id bigint generated always as identity,
  at timestamptz not null default now(),
  response_status integer,
  error text,
  primary key (organization_id, delivery_id, id),
  foreign key (organization_id, delivery_id) references deliveries (organization_id, id) on delete cascade
);

-- An endpoint's deliveries, newest first (the console's per-endpoint list).
create index deliveries_webhook_target on deliveries (organization_id, target, id) where kind = 'webhook';
