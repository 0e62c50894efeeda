-- Core schema: organizations, accounts, memberships, roles, groups, credentials, audit, outbox.
-- Every tenant-owned table carries organization_id and leads its keys with it: it is the
-- distribution key of a future sharded deployment, and every query names it.

create table organizations (
  id uuid primary key default gen_random_uuid(),
  slug text not null unique check (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
  name text not null check (length(name) between 1 and 200),
  invite_ttl_hours integer not null default 72 check (invite_ttl_hours between 1 and 8760),
  default_role text not null default 'member',
  auto_join_verified_domains boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- A person, across organizations. Email is the identity, compared case-insensitively.
create table accounts (
  id uuid primary key default gen_random_uuid(),
  email text not null check (length(email) between 3 and 320),
  given_name text,
  family_name text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index accounts_email_key on accounts (lower(email));

-- Custom roles; the built-in ones (owner, admin, member, billing, viewer) live in code.
create table roles (
  organization_id uuid not null references organizations (id) on delete cascade,
  key text not null check (key ~ '^[a-z][a-z0-9_-]{0,62}$'),
  name text not null,
  permissions text[] not null default '{}',
  created_at timestamptz not null default now(),
  primary key (organization_id, key)
);

create table memberships (
  organization_id uuid not null references organizations (id) on delete cascade,
  account_id uuid not null references accounts (id),
  status text not null check (status in ('invited', 'active', 'suspended', 'removed')),
  source text not null check (source in ('admin', 'invite', 'scim', 'sso')),
  -- Roles given directly (by an admin, an invite, a default); stay when mappings change.
  roles text[] not null default '{member}',
  -- Roles that IdP group mappings grant; recomputed by the reconciler.
  mapped_roles text[] not null default '{}',
  last_active_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, account_id)
);
create index memberships_account on memberships (account_id);
-- Finding another owner must not scan the organization.
create index memberships_active_owners on memberships (organization_id)
  where status = 'active' and ('owner' = any (roles) or 'owner' = any (mapped_roles));

-- Groups: local (made by admins), scim (pushed by the IdP) and saml (names seen in assertions).
create table groups (
  organization_id uuid not null references organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  source text not null check (source in ('local', 'scim', 'saml')),
  display_name text not null check (length(display_name) between 1 and 256),
  external_id text,
  version integer not null default 1,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id)
);
create unique index groups_name_key on groups (organization_id, source, lower(display_name));

create table group_members (
  organization_id uuid not null,
  group_id uuid not null,
  account_id uuid not null references accounts (id),
  added_at timestamptz not null default now(),
  primary key (organization_id, group_id, account_id),
  foreign key (organization_id, group_id) references groups (organization_id, id) on delete cascade
);
create index group_members_account on group_members (organization_id, account_id);

-- SCIM bearer tokens and admin API keys. Only a keyed hash of the secret is kept.
create table credentials (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references organizations (id) on delete cascade,
  kind text not null check (kind in ('scim', 'admin')),
  name text not null check (length(name) between 1 and 100),
  secret_hash text not null unique,
  -- Shown in listings so an admin can tell tokens apart without the secret.
  secret_hint text not null,
  roles text[] not null default '{}',
  created_at timestamptz not null default now(),
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz
);
create index credentials_org on credentials (organization_id, kind);

create table audit_log (
  organization_id uuid not null references organizations (id) on delete cascade,
  id bigint generated always as identity,
  at timestamptz not null default now(),
  channel text not null,
  actor_type text not null,
  actor_id text,
  actor_name text not null,
  action text not null,
  target_type text,
  target_id text,
  details jsonb not null default '{}',
  primary key (organization_id, id)
);
create index audit_log_org_at on audit_log (organization_id, at desc);

-- Domain events, written in the same transaction as the change they describe (transactional
-- outbox). The reconciler turns them into role recomputation, emails and webhooks.
create table outbox (
  organization_id uuid not null references organizations (id) on delete cascade,
  id bigint generated always as identity,
  type text not null,
  payload jsonb not null,
  created_at timestamptz not null default now(),
  primary key (organization_id, id)
);
create index outbox_created on outbox (id);
