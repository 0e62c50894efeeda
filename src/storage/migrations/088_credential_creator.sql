-- Who issued each credential (the API keys page shows it). Keys issued before this migration
-- take it from their audit entry.
alter table credentials add column created_by_type text, add column created_by_name text;
update credentials c set created_by_type = a.actor_type, created_by_name = a.actor_name
from audit_log a
where a.organization_id = c.organization_id and a.target_type = 'credential' and a.target_id = c.id::text
  and a.action = c.kind || '_credential.issued';
