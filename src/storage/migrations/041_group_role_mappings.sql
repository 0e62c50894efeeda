-- IdP group -> organization role mappings. A mapping names one group (a SCIM or local group by
-- id) or every group with a name (a SCIM displayName or a value of a SAML groups attribute),
-- compared case-insensitively. Members of a mapped group get the roles in memberships.mapped_roles.
create table group_role_mappings (
  organization_id uuid not null references organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  group_id uuid,
  group_name text check (length(group_name) between 1 and 256),
  roles text[] not null check (cardinality(roles) > 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  check ((group_id is null) <> (group_name is null)),
  foreign key (organization_id, group_id) references groups (organization_id, id) on delete cascade
);
create index group_role_mappings_group on group_role_mappings (organization_id, group_id);
create index group_role_mappings_name on group_role_mappings (organization_id, lower(group_name));
