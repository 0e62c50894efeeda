-- Required SSO (issue 13): the organization's members sign in only through its SAML connection.
-- The break-glass owners (account ids) may still sign in without it; admin API keys are unaffected.
alter table organizations add column require_sso boolean not null default false;
alter table organizations add column sso_break_glass_account_ids uuid[] not null default '{}';
-- An SP-initiated login started from an invitation link carries the invitation to the ACS, which
-- accepts it only for the invited email.
alter table saml_requests add column invitation_id uuid;
-- When a break-glass owner's non-SSO session was first used while SSO was required (audited once).
alter table sessions add column break_glass_audited_at timestamptz;
