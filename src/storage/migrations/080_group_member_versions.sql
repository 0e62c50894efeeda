-- A SCIM group's meta.version is groups.version (bumped by its own changes) plus the number of
-- member changes it has had. Those are counted in a few rows per group, one per database backend
-- slot (pg_backend_pid() % 64), not on the group row: concurrent member adds to one group, each
-- on its own connection, then bump different rows and never wait for one another. The sum only
-- grows (every committed change adds to it), so no two states of a group share a version.
create table group_member_versions (
  organization_id uuid not null,
  group_id uuid not null,
  slot smallint not null,
  changes bigint not null,
  primary key (organization_id, group_id, slot),
  foreign key (organization_id, group_id) references groups (organization_id, id) on delete cascade
);

-- Statement triggers, so every path that writes group_members (SCIM, admin API, SAML sign-in,
-- invitations, a member's removal) counts its changes. A group being deleted (its members going
-- by cascade) is skipped by the join: it no longer exists.
create function orgsync_count_member_changes() returns trigger
language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    insert into group_member_versions (organization_id, group_id, slot, changes)
    select c.organization_id, c.group_id, pg_backend_pid() % 64, count(*)
    from changed_members c
    join groups g on g.organization_id = c.organization_id and g.id = c.group_id
    group by c.organization_id, c.group_id
    on conflict (organization_id, group_id, slot)
    do update set changes = group_member_versions.changes + excluded.changes;
  else
    insert into group_member_versions (organization_id, group_id, slot, changes)
    select c.organization_id, c.group_id, pg_backend_pid() % 64, count(*)
    from removed_members c
    join groups g on g.organization_id = c.organization_id and g.id = c.group_id
    group by c.organization_id, c.group_id
    on conflict (organization_id, group_id, slot)
    do update set changes = group_member_versions.changes + excluded.changes;
  end if;
  return null;
end
$$;

create trigger group_members_added after insert on group_members
  referencing new table as changed_members
  for each statement execute function orgsync_count_member_changes();

create trigger group_members_removed after delete on group_members
  referencing old table as removed_members
  for each statement execute function orgsync_count_member_changes();
