-- Reconciler state: which scheduled runs were claimed, which events were dispatched, and the
-- deliveries (email, webhooks) those events produced.

-- One row per (job, scheduled tick): the first instance to insert it runs that tick.
create table job_runs (
  key text primary key,
  claimed_at timestamptz not null default now()
);

alter table outbox add column dispatched_at timestamptz;
create index outbox_undispatched on outbox (id) where dispatched_at is null;

-- Where an organization wants its webhooks. The signing secret must be usable, so it is kept
-- sealed (encrypted under the server secret), not hashed.
create table webhook_endpoints (
  organization_id uuid not null references organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  url text not null,
  secret_sealed text not null,
  -- Event types to send; '*' means all.
  events text[] not null default '{*}',
  enabled boolean not null default true,
  created_at timestamptz not null default now(),
  primary key (organization_id, id)
);

create table deliveries (
  organization_id uuid not null references organizations (id) on delete cascade,
  id bigint generated always as identity,
  event_id bigint not null,
  kind text not null check (kind in ('email', 'webhook')),
  -- The webhook endpoint id, or the email address.
  target text not null,
  status text not null default 'pending' check (status in ('pending', 'delivered', 'dead')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_error text,
  delivered_at timestamptz,
  created_at timestamptz not null default now(),
  primary key (organization_id, id),
  foreign key (organization_id, event_id) references outbox (organization_id, id) on delete cascade,
  unique (organization_id, event_id, kind, target)
);
create index deliveries_due on deliveries (next_attempt_at) where status = 'pending';
create index deliveries_dead on deliveries (organization_id, id) where status = 'dead';
