-- A change of status moves a member between two counter rows of its shard (migration 094), and
-- the trigger locked the row it leaves before the row it joins: a deactivation (active, then
-- suspended) and a reactivation in the same shard (suspended, then active) took the two rows in
-- opposite orders, and two such statements at once could deadlock. Now an update takes its two
-- rows in one order, by (list_tab, status), whichever way the member moves (an accepted
-- invitation moves between tabs and follows the same order). The shard is 112's bigint formula.
create function orgsync_member_count_leave(m memberships) returns void language plpgsql as $$
begin
  update member_counts set n = n - 1
  where organization_id = m.organization_id and list_tab = m.list_tab and status = m.status
    and shard = abs(hashtext(m.account_id::text)::bigint) % 16;
end $$;

create function orgsync_member_count_join(m memberships) returns void language plpgsql as $$
begin
  if m.list_tab is null then return; end if;
  insert into member_counts (organization_id, list_tab, status, shard, n)
  values (m.organization_id, m.list_tab, m.status, abs(hashtext(m.account_id::text)::bigint) % 16, 1)
  on conflict (organization_id, list_tab, status, shard) do update set n = member_counts.n + 1;
end $$;

-- A removed membership (list_tab null) has no row: the comparison is then null, and only one row moves.
create or replace function orgsync_member_counts() returns trigger language plpgsql as $$
begin
  if tg_op = 'UPDATE' and (new.list_tab, new.status) < (old.list_tab, old.status) then
    perform orgsync_member_count_join(new);
    perform orgsync_member_count_leave(old);
  else
    if tg_op in ('UPDATE', 'DELETE') then perform orgsync_member_count_leave(old); end if;
    if tg_op in ('INSERT', 'UPDATE') then perform orgsync_member_count_join(new); end if;
  end if;
  return null;
end $$;
