-- State the instances of a fleet share through PostgreSQL.

-- The single-organization rule is a setting of each organization. Null only until the first
-- instance after this migration starts: it fills in its SINGLE_ORGANIZATION_POLICY (the default
-- for new organizations), so existing organizations keep the rule they ran under.
alter table organizations add column single_organization boolean;

-- One token bucket per SCIM token, shared by every instance. Unlogged: a crash empties it, which
-- only refills every bucket; in exchange an update writes no WAL.
create unlogged table scim_rate_buckets (
  credential_id uuid primary key,
  tokens double precision not null,
  refilled_at timestamptz not null,
  allowed boolean not null
);
