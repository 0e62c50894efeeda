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

/**
 * Event types orgsync itself acts on when the reconciler dispatches them: role mapping
 * (sync/roles.ts) and emails (sync/outbox.ts). The reconciler's handlers see no other type.
 */
const ROLE_MAPPING_EVENTS = new Set(['member.joined', 'group.members_changed', 'group.updated', 'group.deleted']);
export const EMAIL_EVENTS = new Set(['invite.created', 'domain.verification_lost']);

/**
 * The members a join or a group membership change concerns, from its payload `e.payload` (as
 * sync/roles.ts reads them). SCIM writes these two in bulk, and role mapping changes nothing for
 * them in an organization that maps no groups, unless a member still has mapped roles: then they
 * are written dispatched (orgsync_role_mapping_quiet, migration 115).
 */
const ROLE_MAPPING_MEMBERS: Record<string, (db: Db) => Fragment> = {
  'member.joined': (db) => db`array[e.payload->>'accountId']`,
  'group.members_changed': (db) =>
    db`array(select jsonb_array_elements_text(coalesce(e.payload->'added', '[]') || coalesce(e.payload->'removed', '[]')))`,
};

/** Whether role mapping acts on an event of this type (sync/roles.ts reads nothing else). */
export function concernsRoleMapping(type: string): boolean {
  return ROLE_MAPPING_EVENTS.has(type) || type.startsWith('mapping.');
}

/** Event types an organization's webhooks can receive. */
export const WEBHOOK_EVENT_PREFIXES = ['member.', 'invite.', 'group.'];

/**
 * The outbox's dispatched_at for a new event of `type` whose payload is `e.payload`: unset when
 * something will act on it (role mapping, an email, or a webhook while the organization has an
 * enabled endpoint), else the moment it is written. An event nothing waits for (most SCIM changes
 * of an organization without webhooks or group mappings) is thus neither claimed nor marked by
 * the reconciler, two writes fewer per event; it is kept all the same, like every other event.
 */
function dispatchedAtOnWrite(db: Db, organizationId: string, type: string): Fragment {
  const members = ROLE_MAPPING_MEMBERS[type];
  if (EMAIL_EVENTS.has(type) || (concernsRoleMapping(type) && !members)) return db`null::timestamptz`;
  const quiet = members ? db`orgsync_role_mapping_quiet(${organizationId}, ${members(db)})` : db`true`;
  if (!WEBHOOK_EVENT_PREFIXES.some((prefix) => type.startsWith(prefix)))
    return db`case when ${quiet} then clock_timestamp() end`;
  // The webhook check first: with an endpoint, the role mapping check (and its lock) is not needed.
  return db`case when exists (select 1 from webhook_endpoints where organization_id = ${organizationId} and enabled)
                 then null when ${quiet} then clock_timestamp() end`;
}

export async function emitEvent(
  db: Db,
  organizationId: string,
  type: DomainEventType,
  payload: Record<string, unknown>,
  actor: Actor,
): Promise<void> {
  await db`
    insert into outbox (organization_id, type, payload, dispatched_at)
    select ${organizationId}, ${type}, e.payload, ${dispatchedAtOnWrite(db, organizationId, type)}
    from (select ${db.json(eventBody(payload, actor))}::jsonb as payload) e`;
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
    insert into outbox (organization_id, type, payload, dispatched_at)
    select ${organizationId}, ${change.event}, e.payload, ${dispatchedAtOnWrite(db, organizationId, change.event)}
    from (select ${db.json(eventBody(change.payload, actor))}::jsonb as payload) e`;
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
      insert into outbox (organization_id, type, payload, dispatched_at)
      select ${organizationId}, ${change.event}, e.payload, ${dispatchedAtOnWrite(db, organizationId, change.event)}
      from ${change.rows} as changed_rows,
        lateral (select ${change.payload} || jsonb_build_object('actor', ${actorJson}::jsonb) as payload) e
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
