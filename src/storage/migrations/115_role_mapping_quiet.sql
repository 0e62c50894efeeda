-- Whether role mapping would change nothing for a join or a group membership change of these
-- members (core/events.ts): the organization maps no groups, and none of the members has mapped
-- roles (from a mapping since removed, whose recompute has not reached them yet). Such an event
-- is then written dispatched, and the reconciler neither claims, recomputes nor marks it: in an
-- organization without mappings, most of what SCIM writes.
--
-- A mapping created meanwhile must not be missed. Its creation holds the organization's lock of
-- class 7317112 exclusively until it commits (orgsync_role_mapping_lock); this function takes it
-- shared, then reads with a new snapshot (a volatile function's every query takes one), so it sees
-- every mapping committed before the lock was granted, even one the calling statement's own
-- snapshot predates. A creation after that waits for the caller to commit, and its own dispatch
-- then sees the caller's members.
create function orgsync_role_mapping_lock(org uuid) returns void language sql volatile as $$
  select pg_advisory_xact_lock(7317112, hashtext(org::text))
$$;

-- `members` are account ids as text, from an event's payload; one that is no uuid is nobody's.
create function orgsync_role_mapping_quiet(org uuid, members text[]) returns boolean language plpgsql volatile as $$
begin
  perform pg_advisory_xact_lock_shared(7317112, hashtext(org::text));
  return not exists (select from group_role_mappings m where m.organization_id = org)
    and not exists (
      select from memberships ms
      where ms.organization_id = org and ms.mapped_roles <> '{}'
        and ms.account_id = any (array(
          select m::uuid from unnest(members) m
          where m ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')));
end
$$;
