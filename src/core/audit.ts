import type { Db, Fragment } from '../storage/database.ts';
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

/** One audit entry, as recordAudit's arguments. */
export interface AuditEntry {
  organizationId: string;
  actor: Actor;
  action: string;
  target: AuditTarget | null;
  details: Record<string, unknown>;
}

/**
 * The entries recordAudit would write one by one (the same rows), written by one step of a larger
 * statement, a CTE named `name`, in the order given: one statement for many entries, whatever
 * their number (the arrays keep the statement's text, and so its prepared plan, the same).
 */
export function auditEntriesStep(db: Db, name: string, entries: readonly AuditEntry[]): Fragment {
  const column = <V>(pick: (entry: AuditEntry) => V) => entries.map(pick) as never;
  return db`
    ${db(name)} as (
      insert into audit_log (organization_id, channel, actor_type, actor_id, actor_name, action, target_type, target_id, details)
      select organization_id, channel, actor_type, actor_id, actor_name, action, target_type, target_id, details
      from unnest(${column((e) => e.organizationId)}::uuid[], ${column((e) => e.actor.channel)}::text[],
                  ${column((e) => e.actor.type)}::text[], ${column((e) => e.actor.id ?? null)}::text[],
                  ${column((e) => e.actor.name)}::text[], ${column((e) => e.action)}::text[],
                  ${column((e) => e.target?.type ?? null)}::text[], ${column((e) => e.target?.id ?? null)}::text[],
                  ${column((e) => e.details)}::jsonb[])
        with ordinality as entry (organization_id, channel, actor_type, actor_id, actor_name, action, target_type, target_id, details, n)
      order by n
    )`;
}
