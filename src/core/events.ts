import type { Db, Fragment } from '../storage/database.ts';
import type { Actor } from './actor.ts';

/**
 * Domain events. Written to the outbox in the same transaction as the change, so an event exists
 * exactly when its change committed; the reconciler consumes them (role mapping, email, webhooks).
 */
export type DomainEventType =
  | 'member.joined'
  | 'member.suspended'
  | 'member.reactivated'
  | 'member.removed'
  | 'member.role_changed'
  | 'group.created'
  | 'group.updated'
  | 'group.deleted'
  | 'group.members_changed'
  | (string & {});

export async function emitEvent(
  db: Db,
  organizationId: string,
  type: DomainEventType,
  payload: Record<string, unknown>,
  actor: Actor,
): Promise<void> {
  await db`insert into outbox (organization_id, type, payload) values (${organizationId}, ${type}, ${db.json(eventBody(payload, actor))})`;
}

/**
 * The audit entry and the domain event of one change, written by one statement (a round trip
 * fewer on every membership and group change).
 */
export async function recordChange(
  db: Db,
  organizationId: string,
  actor: Actor,
  change: {
    action: string;
    target: { type: string; id: string };
    details: Record<string, unknown>;
    event: DomainEventType;
    payload: Record<string, unknown>;
  },
): Promise<void> {
  await db`
    with audit as (
      insert into audit_log (organization_id, channel, actor_type, actor_id, actor_name, action, target_type, target_id, details)
      values (${organizationId}, ${actor.channel}, ${actor.type}, ${actor.id ?? null}, ${actor.name}, ${change.action},
              ${change.target.type}, ${change.target.id}, ${db.json(change.details as never)})
    )
    insert into outbox (organization_id, type, payload) values (${organizationId}, ${change.event}, ${db.json(eventBody(change.payload, actor))})`;
}

/**
 * recordChange as steps of a larger statement (a CTE): one audit entry and one event for each
 * row of `rows` (a CTE name or subquery with the columns the details and payload read). The
 * details and payload are jsonb expressions over those rows; the payload gets the actor as
 * eventBody gives it. `name` prefixes the step names.
 */
export function changeRecordSteps(
  db: Db,
  name: string,
  organizationId: string,
  actor: Actor,
  change: {
    action: string;
    target: { type: string; id: Fragment };
    details: Fragment;
    event: DomainEventType;
    payload: Fragment;
    rows: Fragment;
  },
): Fragment {
  const actorJson = db.json(actorOf(actor));
  return db`
    ${db(`${name}_audit`)} as (
      insert into audit_log (organization_id, channel, actor_type, actor_id, actor_name, action, target_type, target_id, details)
      select ${organizationId}, ${actor.channel}, ${actor.type}, ${actor.id ?? null}, ${actor.name}, ${change.action},
             ${change.target.type}, ${change.target.id}, ${change.details}
      from ${change.rows} as changed_rows
    ),
    ${db(`${name}_event`)} as (
      insert into outbox (organization_id, type, payload)
      select ${organizationId}, ${change.event}, ${change.payload} || jsonb_build_object('actor', ${actorJson}::jsonb)
      from ${change.rows} as changed_rows
    )`;
}

const actorOf = (actor: Actor) => ({
  type: actor.type,
  id: actor.id ?? null,
  name: actor.name,
  channel: actor.channel,
});

/** An event's payload carries who caused it. */
function eventBody(payload: Record<string, unknown>, actor: Actor): never {
  return { ...payload, actor: actorOf(actor) } as never;
}
