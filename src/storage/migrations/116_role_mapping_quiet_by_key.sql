-- orgsync_role_mapping_quiet (migration 115) looked its members up with `account_id = any (array(
-- select ...))`. PL/pgSQL keeps a query's plan for the session, and the plan it made while the
-- memberships table was small walked the whole organization (an index on organization_id alone,
-- the members checked row by row): every join of a new organization's first sync cost more than
-- the last, until the next ANALYZE. Each member is now looked up on its own: planned on
-- an empty or a grown table, the query finds the row by its key (the primary key or the account's index).
-- Only a plan made on a table of one page scans it, until the next ANALYZE replans it (as for every
-- statement; test/query-plans.test.ts).
create or replace function orgsync_role_mapping_quiet(org uuid, members text[]) returns boolean language plpgsql volatile as $$
declare
  member text;
begin
  perform pg_advisory_xact_lock_shared(7317112, hashtext(org::text));
  if exists (select from group_role_mappings m where m.organization_id = org) then
    return false;
  end if;
  foreach member in array members loop
    continue when member !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
    if exists (
      select from memberships ms
      where ms.organization_id = org and ms.account_id = member::uuid and ms.mapped_roles <> '{}'
    ) then
      return false;
    end if;
  end loop;
  return true;
end
$$;
