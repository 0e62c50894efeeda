-- Whether a SAML connection's name attributes update an existing account's name on sign-in.
-- Off by default: an account is shared across organizations and an assertion's names are the
-- IdP's word, so they fill in only a new account unless an owner turns this on.
alter table saml_connections add column update_profile boolean not null default false;
