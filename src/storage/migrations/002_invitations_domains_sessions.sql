-- Invitations: the membership row (status 'invited') holds the roles; this holds the offer.
create table invitations (
  organization_id uuid not null references organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  account_id uuid not null references accounts (id),
  email text not null,
  group_ids uuid[] not null default '{}',
  status text not null check (status in ('pending', 'accepted', 'expired', 'revoked')),
  -- Keyed hash of the single-use accept token; cleared once the invitation is no longer pending.
  token_hash text unique,
  invited_by text not null,
  expires_at timestamptz not null,
  accepted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id)
);
create unique index invitations_one_pending on invitations (organization_id, account_id) where status = 'pending';
create index invitations_pending_expiry on invitations (expires_at) where status = 'pending';

-- Email domains an organization has proven it owns; a verified domain belongs to one organization.
create table organization_domains (
  organization_id uuid not null references organizations (id) on delete cascade,
  domain text not null check (domain = lower(domain) and domain ~ '^[a-z0-9.-]+\.[a-z]{2,}$'),
  verification_token text not null,
  verified_at timestamptz,
  created_at timestamptz not null default now(),
  primary key (organization_id, domain)
);
create unique index organization_domains_verified on organization_domains (domain) where verified_at is not null;

-- Signed-in sessions of members (after SSO or accepting an invitation). Only a keyed hash of
-- the cookie value is kept.
create table sessions (
  organization_id uuid not null references organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  account_id uuid not null references accounts (id),
  secret_hash text not null unique,
  via text not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  revoked_at timestamptz,
  last_seen_at timestamptz not null default now(),
  primary key (organization_id, id)
);
create index sessions_account on sessions (organization_id, account_id);
