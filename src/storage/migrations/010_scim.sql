-- SCIM: the IdP's view of each provisioned person, and a log of every SCIM request per token.

-- A provisioned user. Its SCIM id is the account id, so group members, admin API members and
-- SCIM users share one id. The full SCIM document is kept for round trips; the columns beside
-- it are what filters, sorting and uniqueness need.
create table scim_users (
  organization_id uuid not null references organizations (id) on delete cascade,
  account_id uuid not null references accounts (id),
  user_name text not null check (length(user_name) between 1 and 512),
  external_id text,
  active boolean not null default true,
  display_name text,
  -- Lower-cased email values, for indexed `emails.value eq` filters.
  emails text[] not null default '{}',
  resource jsonb not null,
  version integer not null default 1,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, account_id)
);
create unique index scim_users_user_name on scim_users (organization_id, lower(user_name));
create index scim_users_external_id on scim_users (organization_id, external_id);
create index scim_users_emails on scim_users using gin (emails);
create index scim_users_updated on scim_users (organization_id, updated_at);

-- The IdP's group document extras (the group itself lives in groups with source 'scim').
create index groups_external_id on groups (organization_id, external_id) where source = 'scim';

-- What each SCIM token did: one row per request, written in batches.
create table scim_requests (
  organization_id uuid not null references organizations (id) on delete cascade,
  id bigint generated always as identity,
  credential_id uuid not null,
  at timestamptz not null,
  method text not null,
  path text not null,
  status integer not null,
  duration_ms real not null,
  resource_type text,
  resource_id text,
  primary key (organization_id, id)
);
create index scim_requests_credential on scim_requests (organization_id, credential_id, id desc);
-- For pruning entries past their retention.
create index scim_requests_at on scim_requests (at);
