import type { Db } from '../storage/database.ts';
import type { Actor } from './actor.ts';

export interface AuditTarget {
  type: string;
  id: string;
}

/** Records who did what to whom; call it in the same transaction as the change. */
export async function recordAudit(
  db: Db,
  organizationId: string,
  actor: Actor,
  action: string,
  target: AuditTarget | null,
  details: Record<string, unknown> = {},
): Promise<void> {
  await db`
    insert into audit_log (organization_id, channel, actor_type, actor_id, actor_name, action, target_type, target_id, details)
    values (${organizationId}, ${actor.channel}, ${actor.type}, ${actor.id ?? null}, ${actor.name}, ${action},
            ${target?.type ?? null}, ${target?.id ?? null}, ${db.json(details as never)})`;
}
