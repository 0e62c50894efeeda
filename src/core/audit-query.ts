import type { Db, Fragment } from '../storage/database.ts';

export interface AuditEntry {
  id: string;
  at: Date;
  channel: string;
  actorType: string;
  actorId: string | null;
  actorName: string;
  action: string;
  targetType: string | null;
  targetId: string | null;
  /** What the target is called now (an email, a group's or role's name…), or was called when it is gone. */
  targetName: string | null;
  details: Record<string, unknown>;
}

export interface AuditFilter {
  actor?: string;
  /** A target id, or a member's email or a group's name. */
  target?: string;
  action?: string;
  since?: Date;
  until?: Date;
}

const UUID = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

/**
 * The name of an entry's target, looked up in the same statement (one index probe per row of the
 * page, never a query per row from here). A deleted target keeps the name its entry recorded.
 */
function targetName(db: Db, organizationId: string): Fragment {
  const uuidTarget = db`case when l.target_id ~ ${UUID} then l.target_id::uuid end`;
  return db`coalesce(case l.target_type
      when 'account' then (select a.email from accounts a where a.id = ${uuidTarget})
      when 'group' then (select g.display_name from groups g
                         where g.organization_id = ${organizationId} and g.id = ${uuidTarget})
      when 'role' then (select r.name from roles r where r.organization_id = ${organizationId} and r.key = l.target_id)
      when 'invitation' then (select i.email from invitations i
                              where i.organization_id = ${organizationId} and i.id = ${uuidTarget})
      when 'webhook' then (select w.url from webhook_endpoints w
                           where w.organization_id = ${organizationId} and w.id = ${uuidTarget})
      when 'credential' then (select c.name from credentials c
                              where c.organization_id = ${organizationId} and c.id = ${uuidTarget})
      when 'admin_key' then (select c.name from credentials c
                             where c.organization_id = ${organizationId} and c.id = ${uuidTarget})
      when 'mapping' then (select coalesce(m.group_name, g.display_name) from group_role_mappings m
                           left join groups g on g.organization_id = m.organization_id and g.id = m.group_id
                           where m.organization_id = ${organizationId} and m.id = ${uuidTarget})
      when 'organization' then (select o.name from organizations o where o.id = ${uuidTarget})
      when 'domain' then l.target_id
    end,
    l.details ->> 'email', l.details ->> 'displayName', l.details ->> 'name', l.details ->> 'url')`;
}

function filterConditions(db: Db, organizationId: string, q: AuditFilter): Fragment {
  return db`l.organization_id = ${organizationId}
      ${q.actor ? db`and (l.actor_id = ${q.actor} or l.actor_name = ${q.actor})` : db``}
      ${
        q.target
          ? db`and (l.target_id = ${q.target}
               or l.target_id in (select a.id::text from accounts a where lower(a.email) = lower(${q.target}))
               or l.target_id in (select g.id::text from groups g
                                  where g.organization_id = ${organizationId} and g.display_name = ${q.target}))`
          : db``
      }
      ${q.action ? db`and (l.action = ${q.action} or l.action like ${q.action.replace(/[\\%_]/g, (c) => `\\${c}`) + '.%'})` : db``}
      ${q.since ? db`and l.at >= ${q.since}` : db``}
      ${q.until ? db`and l.at < ${q.until}` : db``}`;
}

/** The organization's audit log, newest first, filtered and keyset-paged by id (`before`). */
export async function listAudit(
  db: Db,
  organizationId: string,
  q: AuditFilter & { before?: string; limit: number },
): Promise<{ items: AuditEntry[]; next: string | null }> {
  const items = await db<AuditEntry[]>`
    select l.id, l.at, l.channel, l.actor_type, l.actor_id, l.actor_name, l.action, l.target_type, l.target_id,
           ${targetName(db, organizationId)} as target_name, l.details
    from audit_log l
    where ${filterConditions(db, organizationId, q)}
      ${q.before ? db`and l.id < ${q.before}` : db``}
    order by l.id desc limit ${q.limit}`;
  return { items, next: items.length === q.limit ? items[items.length - 1]!.id : null };
}

/** Whether more than `max` entries match (an export of them would be refused); reads at most max + 1 index entries. */
export async function auditMatchesMoreThan(db: Db, organizationId: string, q: AuditFilter, max: number) {
  const rows = await db`
    select 1 from audit_log l where ${filterConditions(db, organizationId, q)}
    order by l.id desc offset ${max} limit 1`;
  return rows.length > 0;
}

/** Every matching entry, newest first, a page at a time (each page one short statement). */
export async function* auditEntries(
  db: Db,
  organizationId: string,
  q: AuditFilter,
  pageSize = 1000,
): AsyncGenerator<AuditEntry[]> {
  let before: string | undefined;
  do {
    const page = await listAudit(db, organizationId, { ...q, before, limit: pageSize });
    if (page.items.length) yield page.items;
    before = page.next ?? undefined;
  } while (before);
}
