-- What a refused SCIM request was told (the SCIM error's scimType and detail), for the admin's log.
alter table scim_requests add column error_detail text;
