-- Migration 094 chose a member's counter shard with abs(hashtext(account_id::text)) % 16, and
-- abs() of the one integer hash -2^31 is out of range: that account's membership could never be
-- inserted. The same formula over bigint gives every other hash the shard it had (existing
-- counter rows stay right) and that one hash shard 0.
create or replace function orgsync_member_counts() returns trigger language plpgsql as $$
begin
  if tg_op in ('UPDATE', 'DELETE') and old.list_tab is not null then
    update member_counts set n = n - 1
    where organization_id = old.organization_id and list_tab = old.list_tab and status = old.status
      and shard = abs(hashtext(old.account_id::text)::bigint) % 16;
  end if;
  if tg_op in ('INSERT', 'UPDATE') and new.list_tab is not null then
    insert into member_counts (organization_id, list_tab, status, shard, n)
    values (new.organization_id, new.list_tab, new.status, abs(hashtext(new.account_id::text)::bigint) % 16, 1)
    on conflict (organization_id, list_tab, status, shard) do update set n = member_counts.n + 1;
  end if;
  return null;
end $$;
