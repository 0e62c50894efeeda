-- Every transaction that moves counter rows (migrations 094, 111, 117) now counts in one shard
-- that no other such transaction holds: the first, from the one it would have counted in, whose
-- advisory lock is free. Before, a write alone counted in its account's shard, beside the shared
-- transactions' own: a create takes the SCIM user counter's row and then the member counter's,
-- a deactivation two rows of the member counter, so a batch that had deactivated and then created
-- and a lone create meeting in one shard could deadlock (seen under creates and deactivations sent
-- at once, as a lone write's HTTP 500 after a one-second stall). Holding its shard, a transaction
-- meets no other of its organization on a counter row. Only when all 16 are held does it count in
-- the one it asked for (and may wait there, as before). A transaction that moves the counters of
-- two organizations (a user's key changed by hand) holds the shard of the first only.
create function orgsync_take_counter_shard(org uuid, preferred smallint) returns smallint
language plpgsql volatile as $$
declare
  s smallint;
begin
  for i in 0..15 loop
    s := (preferred + i) % 16;
    if pg_try_advisory_xact_lock(7317113, hashtext(org::text || '/' || s)) then
      perform set_config('orgsync.counter_shard', s::text, true);
      return s;
    end if;
  end loop;
  perform set_config('orgsync.counter_shard', preferred::text, true);
  return preferred;
end $$;

-- The transaction's shard: the one it took (or a shared transaction took when it opened), else it
-- takes one now, from its account's.
create function orgsync_counter_shard(org uuid, by_account smallint) returns smallint
language sql volatile as $$
  select coalesce(nullif(current_setting('orgsync.counter_shard', true), '')::smallint,
                  orgsync_take_counter_shard(org, by_account))
$$;

create or replace function orgsync_member_count_leave(m memberships) returns void language plpgsql as $$
declare
  s smallint;
begin
  if m.list_tab is null then return; end if;
  s := orgsync_counter_shard(m.organization_id, (abs(hashtext(m.account_id::text)::bigint) % 16)::smallint);
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
          orgsync_counter_shard(m.organization_id, (abs(hashtext(m.account_id::text)::bigint) % 16)::smallint), 1)
  on conflict (organization_id, list_tab, status, shard) do update set n = member_counts.n + 1;
end $$;

create or replace function orgsync_scim_user_counts() returns trigger language plpgsql as $$
declare
  s smallint;
begin
  if tg_op in ('UPDATE', 'DELETE') then
    s := orgsync_counter_shard(old.organization_id, (hashtext(old.account_id::text) & 15)::smallint);
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
    values (new.organization_id, orgsync_counter_shard(new.organization_id, (hashtext(new.account_id::text) & 15)::smallint), 1)
    on conflict (organization_id, shard) do update set n = scim_user_counts.n + 1;
  end if;
  return null;
end $$;

drop function orgsync_counter_shard(smallint);
