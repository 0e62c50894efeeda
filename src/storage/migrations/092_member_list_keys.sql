-- The members list sorts, pages (keyset) and searches inside one organization at 100,000 members.
-- Email and names live on accounts (shared by organizations), so each membership keeps a copy of
-- its sort keys: an index can then lead with (organization_id, list_tab) and walk one sort order.
-- The copies are kept by triggers, so no code path can forget them. Collation "C": byte order,
-- which also lets `like 'prefix%'` use the same indexes for search (pg_trgm is not assumed).
alter table memberships
  add column list_tab text generated always as
    (case status when 'invited' then 'invitations' when 'removed' then null else 'members' end) stored,
  add column email_key text collate "C",
  add column name_key text collate "C",
  add column family_key text collate "C";

create function orgsync_membership_sort_keys() returns trigger language plpgsql as $$
begin
  select lower(a.email),
         lower(coalesce(nullif(btrim(concat_ws(' ', a.given_name, a.family_name)), ''), a.email)),
         lower(nullif(btrim(a.family_name), ''))
    into new.email_key, new.name_key, new.family_key
    from accounts a where a.id = new.account_id;
  return new;
end $$;
create trigger memberships_sort_keys before insert or update of account_id on memberships
  for each row execute function orgsync_membership_sort_keys();

create function orgsync_account_sort_keys() returns trigger language plpgsql as $$
begin
  update memberships set
    email_key = lower(new.email),
    name_key = lower(coalesce(nullif(btrim(concat_ws(' ', new.given_name, new.family_name)), ''), new.email)),
    family_key = lower(nullif(btrim(new.family_name), ''))
  where account_id = new.id;
  return null;
end $$;
create trigger accounts_sort_keys after update of email, given_name, family_name on accounts
  for each row when (old.email is distinct from new.email or old.given_name is distinct from new.given_name
    or old.family_name is distinct from new.family_name)
  execute function orgsync_account_sort_keys();

update memberships m set
  email_key = lower(a.email),
  name_key = lower(coalesce(nullif(btrim(concat_ws(' ', a.given_name, a.family_name)), ''), a.email)),
  family_key = lower(nullif(btrim(a.family_name), ''))
from accounts a where a.id = m.account_id;
alter table memberships alter column email_key set not null, alter column name_key set not null;

-- One index per sort; ties are broken by account_id, so (key, account_id) is the keyset cursor.
-- The email and name indexes also answer prefix search; family_key finds "smith" in "Ann Smith".
create index memberships_list_email on memberships (organization_id, list_tab, email_key, account_id);
create index memberships_list_name on memberships (organization_id, list_tab, name_key, account_id);
create index memberships_list_status on memberships (organization_id, list_tab, status, account_id);
create index memberships_list_joined on memberships (organization_id, list_tab, created_at, account_id);
create index memberships_list_activity on memberships
  (organization_id, list_tab, coalesce(last_active_at, '-infinity'::timestamptz), account_id);
create index memberships_list_family on memberships (organization_id, list_tab, family_key) where family_key is not null;
