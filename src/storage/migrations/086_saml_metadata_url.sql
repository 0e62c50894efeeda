-- A SAML connection may take its IdP metadata from a URL: fetched when saved, then refreshed by
-- the reconciler when the metadata's cacheDuration/validUntil says (within configured bounds).
-- A failed refresh keeps the last good settings and records its error here for the admin.
alter table saml_connections
  add column metadata_url text check (length(metadata_url) <= 2048),
  -- The last successful fetch, and until when that metadata says it is valid (if it says).
  add column metadata_refreshed_at timestamptz,
  add column metadata_valid_until timestamptz,
  add column metadata_next_refresh_at timestamptz,
  -- The last failed fetch (cleared by the next success).
  add column metadata_error text,
  add column metadata_error_at timestamptz;
create index saml_connections_metadata_due on saml_connections (metadata_next_refresh_at)
  where metadata_url is not null;
