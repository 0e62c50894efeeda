-- Domains are verified by a DNS TXT record and re-checked daily; a record that disappears
-- unverifies the domain (and so stops auto-join through it).
alter table organization_domains
  add column checked_at timestamptz,
  add column verification_lost_at timestamptz;
create index organization_domains_recheck on organization_domains (checked_at nulls first, domain)
  where verified_at is not null;
