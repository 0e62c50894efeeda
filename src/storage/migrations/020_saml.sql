-- SAML 2.0 single sign-on: the SP key of each organization, its IdP connections, the
-- AuthnRequests it sent (for InResponseTo), the assertion ids it consumed (replay cache) and a
-- log of sign-in attempts an admin reads to debug a connection.

-- One SP signing/encryption key pair per organization; the private key is sealed (sealSecret).
create table saml_sp_keys (
  organization_id uuid primary key references organizations (id) on delete cascade,
  certificate text not null,
  private_key_sealed text not null,
  created_at timestamptz not null default now()
);

create table saml_connections (
  organization_id uuid not null references organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  name text not null check (length(name) between 1 and 100),
  idp_entity_id text not null check (length(idp_entity_id) between 1 and 1024),
  sso_url text not null,
  -- PEM bodies (base64 DER) of the IdP's signing certificates; several during a rotation.
  certificates text[] not null check (cardinality(certificates) between 1 and 10),
  -- Attribute names for email, firstName, lastName, groups; absent keys use the defaults.
  attribute_mapping jsonb not null default '{}',
  allow_idp_initiated boolean not null default true,
  enabled boolean not null default true,
  -- Absolute URL prefixes (besides PUBLIC_URL) a login may return to.
  allowed_return_urls text[] not null default '{}',
  clock_skew_seconds integer not null default 120 check (clock_skew_seconds between 0 and 600),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id)
);
create unique index saml_connections_entity_key on saml_connections (organization_id, idp_entity_id);

-- AuthnRequests sent and not yet answered; an answer consumes its row.
create table saml_requests (
  organization_id uuid not null references organizations (id) on delete cascade,
  id text not null,
  connection_id uuid not null,
  return_to text not null,
  expires_at timestamptz not null,
  primary key (organization_id, id),
  foreign key (organization_id, connection_id) references saml_connections (organization_id, id) on delete cascade
);
create index saml_requests_expiry on saml_requests (organization_id, expires_at);

-- Assertion ids already used, kept until the assertion could no longer be valid.
create table saml_replay_cache (
  organization_id uuid not null references organizations (id) on delete cascade,
  assertion_id text not null,
  expires_at timestamptz not null,
  primary key (organization_id, assertion_id)
);
create index saml_replay_cache_expiry on saml_replay_cache (organization_id, expires_at);

create table saml_attempts (
  organization_id uuid not null references organizations (id) on delete cascade,
  id bigint generated always as identity,
  at timestamptz not null default now(),
  connection_id uuid,
  idp_entity_id text,
  name_id text,
  email text,
  account_id uuid,
  outcome text not null check (outcome in ('success', 'refused')),
  reason text,
  message text,
  primary key (organization_id, id)
);
-- Pruning old attempts reads by time.
create index saml_attempts_org_at on saml_attempts (organization_id, at);
