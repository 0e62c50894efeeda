-- Login CSRF defence: each SP-initiated AuthnRequest is bound to the browser that started it.
-- /saml/{org}/login gives the browser a random cookie for the request and keeps only its keyed
-- hash (hashSecret) here; the ACS accepts an answer to the request only from a browser that
-- presents the cookie. Requests pending from before this migration have none, so an answer to
-- one is refused (signing in again works): nullable, so instances not yet upgraded keep working
-- during a rolling deploy.
alter table saml_requests add column browser_binding_hash text;
