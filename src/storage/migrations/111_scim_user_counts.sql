-- The SCIM Users list's unfiltered total, kept exact by a trigger (as member_counts, migration
-- 094): an IdP paging through /Users reads at most 16 counter rows per page instead of counting
-- every user of the organization. Each organization's count is split over 16 shards chosen by
-- account id, so concurrent creates in one organization mostly update different rows.
-- The shard is the hash's low 4 bits: abs(hashtext(...)) fails for the one hash -2^31.
create table scim_user_counts (
  organization_id uuid not null references organizations (id) on delete cascade,
  shard smallint not null,
  n bigint not null default 0,
  primary key (organization_id, shard)
);

create function orgsync_scim_user_counts() returns trigger language plpgsql as $$
begin
  if tg_op in ('UPDATE', 'DELETE') then
    update scim_user_counts set n = n - 1
    where organization_id = old.organization_id and shard = hashtext(old.account_id::text) & 15;
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    insert into scim_user_counts (organization_id, shard, n)
    values (new.organization_id, hashtext(new.account_id::text) & 15, 1)
    on conflict (organization_id, shard) do update set n = scim_user_counts.n + 1;
  end if;
  return null;
end $$;
create trigger scim_users_count after insert or delete on scim_users
  for each row execute function orgsync_scim_user_counts();
-- orgsync never changes a user's key (organization_id, account_id), but nothing in the schema
-- forbids it (no foreign key refers to scim_users): should one change, the count follows the row
-- (to the other organization; to the other shard, so each shard stays a true count).
create trigger scim_users_count_key after update of organization_id, account_id on scim_users
  for each row when (old.organization_id is distinct from new.organization_id or old.account_id is distinct from new.account_id)
  execute function orgsync_scim_user_counts();

insert into scim_user_counts (organization_id, shard, n)
select organization_id, hashtext(account_id::text) & 15, count(*)
from scim_users
group by 1, 2;
