import type { Sql } from '../storage/database.ts';
import { systemActor } from '../core/actor.ts';
import { concernsRoleMapping } from '../core/events.ts';
import { membershipKeysAfter } from '../core/memberships.ts';
import { membersOfMappedGroups, recomputeMappedRoles, type RoleChangeTrigger } from '../core/role-mapping.ts';
import type { EventHandler } from './outbox.ts';

const actor = systemActor('sync', 'reconciler');
const BATCH = 1000;

/**
 * Recomputes the mapped roles of everyone an event may have affected, in the dispatch
 * transaction: group membership changes, deleted or renamed groups, mapping changes, joins.
 * Each affected member keeps the events that concern them, so a change is audited with its cause.
 */
export const recomputeRolesOnEvents: EventHandler = async (tx, events) => {
  const affected = new Map<string, Map<string, RoleChangeTrigger[]>>();
  const add = (org: string, ids: unknown, trigger: RoleChangeTrigger) => {
    const triggers = affected.get(org) ?? new Map<string, RoleChangeTrigger[]>();
    for (const id of Array.isArray(ids) ? ids : [ids]) {
      if (typeof id === 'string') triggers.set(id, [...(triggers.get(id) ?? []), trigger]);
    }
    affected.set(org, triggers);
  };
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const names = (...v: unknown[]) => v.filter((n): n is string => typeof n === 'string');
  for (const { organizationId: org, type, payload: p } of events) {
    // Only the types core/events.ts lists for role mapping: an event of another type may have
    // been written dispatched, so a branch for one here would run only sometimes.
    if (!concernsRoleMapping(type)) continue;
    const event = { event: type };
    if (type === 'group.members_changed') {
      add(org, [...((p.added as string[]) ?? []), ...((p.removed as string[]) ?? [])], {
        ...event,
        groupId: text(p.groupId),
      });
    } else if (type === 'group.deleted') {
      add(org, p.removed, { ...event, groupId: text(p.groupId), groupNames: names(p.displayName) });
    } else if (type === 'member.joined') {
      add(org, p.accountId, event);
    } else if (type === 'group.updated') {
      add(org, await membersOfMappedGroups(tx, org, p.groupId as string, null), {
        ...event,
        groupId: text(p.groupId),
        groupNames: names(p.from, p.to),
      });
    } else if (type.startsWith('mapping.')) {
      const roles = (type === 'mapping.updated' ? p.previousRoles : type === 'mapping.deleted' ? p.roles : []) as
        string[] | undefined;
      add(org, await membersOfMappedGroups(tx, org, (p.groupId as string) ?? null, (p.groupName as string) ?? null), {
        ...event,
        mappingId: text(p.mappingId),
        mappingRoles: Array.isArray(roles) ? roles : undefined,
        groupId: text(p.groupId),
      });
    }
  }
  for (const [org, triggers] of affected) {
    const all = [...triggers.keys()];
    for (let i = 0; i < all.length; i += BATCH) {
      await recomputeMappedRoles(tx, org, all.slice(i, i + BATCH), actor, { kind: 'event', triggers });
    }
  }
};

/** The periodic full pass: every membership of every organization, in batches; repairs drift. */
export async function repairMappedRoles(sql: Sql): Promise<number> {
  let changed = 0;
  let after: { org: string; account: string } | null = null;
  for (;;) {
    const cursor: { org: string; account: string } | null = after;
    const page = await membershipKeysAfter(sql, cursor, BATCH);
    if (page.length === 0) return changed;
    const byOrg = new Map<string, string[]>();
    for (const m of page) byOrg.set(m.organizationId, [...(byOrg.get(m.organizationId) ?? []), m.accountId]);
    for (const [org, ids] of byOrg)
      changed += await sql.begin((tx) => recomputeMappedRoles(tx, org, ids, actor, { kind: 'repair' }));
    const last = page[page.length - 1]!;
    after = { org: last.organizationId, account: last.accountId };
  }
}
