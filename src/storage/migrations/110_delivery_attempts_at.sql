-- Housekeeping deletes delivery attempts past the outbox's retention (except each delivery's
-- latest): this index lets it read only the old ones instead of the whole table.
create index delivery_attempts_at on delivery_attempts (at);
