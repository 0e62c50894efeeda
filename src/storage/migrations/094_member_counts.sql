-- The members list's totals, kept exact by a trigger so a count at 100,000 members reads a few
-- rows instead of scanning them. Each (organization, tab, status) is split over 16 shards chosen
-- by account id: concurrent joins in one organization mostly update different rows, so the
-- counter does not serialize provisioning.
create table member_counts (
  organization_id uuid not null references organizations (id) on delete cascade,
  list_tab text not null,
  status text not null,
  shard smallint not null,
  n bigint not null default 0,
  primary key (organization_id, list_tab, status, shard)
);

create function orgsync_member_counts() returns trigger language plpgsql as $$
begin
  if tg_op in ('UPDATE', 'DELETE') and old.list_tab is not null then
    update member_counts set n = n - 1
    where organization_id = old.organization_id and list_tab = old.list_tab and status = old.status
      and shard = abs(hashtext(old.account_id::text)) % 16;
  end if;
  if tg_op in ('INSERT', 'UPDATE') and new.list_tab is not null then
    insert into member_counts (organization_id, list_tab, status, shard, n)
    values (new.organization_id, new.list_tab, new.status, abs(hashtext(new.account_id::text)) % 16, 1)
    on conflict (organization_id, list_tab, status, shard) do update set n = member_counts.n + 1;
  end if;
  return null;
end $$;
create trigger memberships_count after insert or delete on memberships
  for each row execute function orgsync_member_counts();
create trigger memberships_count_status after update of status on memberships
  for each row when (old.status is distinct from new.status) execute function orgsync_member_counts();

insert into member_counts (organization_id, list_tab, status, shard, n)
select organization_id, list_tab, status, abs(hashtext(account_id::text)) % 16, count(*)
from memberships where list_tab is not null
group by 1, 2, 3, 4;
