-- The members list's indexes (092) also hold account_id, so on a table that looked tiny when a
-- statement was first planned, PostgreSQL could pick one of them for a lookup by (organization_id,
-- account_id) over the primary key, as a tie. A prepared statement keeps that plan: each SCIM
-- create then walked the whole organization in the list index (0.4 ms at 8,000 members, growing
-- with them) until the table was next analyzed. Partial on `list_tab is not null` (every list
-- query names its tab, which implies it), they can no longer serve a lookup that names no tab,
-- and they leave out removed memberships, which no list shows.
drop index memberships_list_email;
drop index memberships_list_name;
drop index memberships_list_status;
drop index memberships_list_joined;
drop index memberships_list_activity;
create index memberships_list_email on memberships (organization_id, list_tab, email_key, account_id)
  where list_tab is not null;
create index memberships_list_name on memberships (organization_id, list_tab, name_key, account_id)
  where list_tab is not null;
create index memberships_list_status on memberships (organization_id, list_tab, status, account_id)
  where list_tab is not null;
create index memberships_list_joined on memberships (organization_id, list_tab, created_at, account_id)
  where list_tab is not null;
create index memberships_list_activity on memberships
  (organization_id, list_tab, coalesce(last_active_at, '-infinity'::timestamptz), account_id)
  where list_tab is not null;
