import type { Db } from '../storage/database.ts';

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
  details: Record<string, unknown>;
}

/** The organization's audit log, newest first, filtered and keyset-paged by id (`before`). */
export async function listAudit(
  db: Db,
  organizationId: string,
  q: { actor?: string; target?: string; action?: string; since?: Date; until?: Date; before?: string; limit: number },
): Promise<{ items: AuditEntry[]; next: string | null }> {
  const items = await db<AuditEntry[]>`
    select id, at, channel, actor_type, actor_id, actor_name, action, target_type, target_id, details from audit_log
    where organization_id = ${organizationId}
      ${q.actor ? db`and (actor_id = ${q.actor} or actor_name = ${q.actor})` : db``}
      ${q.target ? db`and target_id = ${q.target}` : db``}
      ${q.action ? db`and (action = ${q.action} or action like ${q.action.replace(/[\\%_]/g, (c) => `\\${c}`) + '.%'})` : db``}
      ${q.since ? db`and at >= ${q.since}` : db``}
      ${q.until ? db`and at < ${q.until}` : db``}
      ${q.before ? db`and id < ${q.before}` : db``}
    order by id desc limit ${q.limit}`;
  return { items, next: items.length === q.limit ? items[items.length - 1]!.id : null };
}
