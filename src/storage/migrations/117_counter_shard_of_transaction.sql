-- A transaction may name the counter shard it counts in (set_config('orgsync.counter_shard', …,
-- true)): every counter row it moves is then of that shard. A shared transaction of SCIM writes
-- (storage/shared-transactions.ts) holds the counter rows it moves until it commits; with shards
-- chosen by account id it held rows of many shards in no order, so two of them had to run one at
-- a time. With a shard each, two such transactions meet on no counter row. Without the setting, a
-- write counts in its account's shard as before (each table keeps its own formula).
--
-- Only the sum over an organization's shards is a count now: a member may join in one shard and
-- leave in another, so leaving creates its row (at -1) when there is none, unless the organization
-- itself is being deleted (its counters go with it).
create function orgsync_counter_shard(by_account smallint) returns smallint language sql stable as $$
  select coalesce(nullif(current_setting('orgsync.counter_shard', true), '')::smallint, by_account)
$$;

create or replace function orgsync_member_count_leave(m memberships) returns void language plpgsql as $$
declare
  s smallint := orgsync_counter_shard((abs(hashtext(m.account_id::text)::bigint) % 16)::smallint);
begin
  if m.list_tab is null then return; end if;
  update member_counts set n = n - 1
  where organization_id = m.organization_id and list_tab = m.list_tab and status = m.status and shard = s;
  if not found then
    insert into member_counts (organization_id, list_tab, status, shard, n)
    select m.organization_id, m.list_tab, m.status, s, -1
    where exists (select 1 from organizations where id = m.organization_id)
    on conflict (organization_id, list_tab, status, shard) do update set n = member_counts.n - 1;
  end if;
end $$;

create or replace function orgsync_member_count_join(m memberships) returns void language plpgsql as $$
begin
  if m.list_tab is null then return; end if;
  insert into member_counts (organization_id, list_tab, status, shard, n)
  values (m.organization_id, m.list_tab, m.status,
          orgsync_counter_shard((abs(hashtext(m.account_id::text)::bigint) % 16)::smallint), 1)
  on conflict (organization_id, list_tab, status, shard) do update set n = member_counts.n + 1;
end $$;

create or replace function orgsync_scim_user_counts() returns trigger language plpgsql as $$
declare
  s smallint;
begin
  if tg_op in ('UPDATE', 'DELETE') then
    s := orgsync_counter_shard((hashtext(old.account_id::text) & 15)::smallint);
    update scim_user_counts set n = n - 1 where organization_id = old.organization_id and shard = s;
    if not found then
      insert into scim_user_counts (organization_id, shard, n)
      select old.organization_id, s, -1
      where exists (select 1 from organizations where id = old.organization_id)
      on conflict (organization_id, shard) do update set n = scim_user_counts.n - 1;
    end if;
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    insert into scim_user_counts (organization_id, shard, n)
    values (new.organization_id, orgsync_counter_shard((hashtext(new.account_id::text) & 15)::smallint), 1)
    on conflict (organization_id, shard) do update set n = scim_user_counts.n + 1;
  end if;
  return null;
end $$;
