import type { Db } from '../storage/database.ts';
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
  const body = { ...payload, actor: { type: actor.type, id: actor.id ?? null, name: actor.name, channel: actor.channel } };
  await db`insert into outbox (organization_id, type, payload) values (${organizationId}, ${type}, ${db.json(body as never)})`;
}
