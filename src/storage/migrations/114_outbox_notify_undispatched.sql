-- An event nothing in orgsync acts on is written already dispatched (core/events.ts), and waking
-- the reconciler for it only has it look for work that is not there; the notification itself is
-- queued at commit under a lock every notifying commit takes. So only an undispatched event
-- notifies: a row trigger whose WHEN clause, evaluated without calling the function, passes over
-- the others. PostgreSQL still folds a transaction's identical notifications into one.
drop trigger outbox_notify on outbox;
create trigger outbox_notify after insert on outbox
  for each row when (new.dispatched_at is null) execute function orgsync_outbox_notify();
