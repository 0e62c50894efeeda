import type { Sql } from '../storage/database.ts';
import { systemActor } from '../core/actor.ts';
import { membersOfMappedGroups, recomputeMappedRoles } from '../core/role-mapping.ts';
import type { EventHandler } from './outbox.ts';

const actor = systemActor('sync', 'reconciler');
const BATCH = 1000;

/**
 * Recomputes the mapped roles of everyone an event may have affected, in the dispatch
 * transaction: group membership changes, deleted or renamed groups, mapping changes, joins.
 */
export const recomputeRolesOnEvents: EventHandler = async (tx, events) => {
  const affected = new Map<string, Set<string>>();
  const add = (org: string, ids: unknown) => {
    const set = affected.get(org) ?? new Set<string>();
    for (const id of Array.isArray(ids) ? ids : [ids]) if (typeof id === 'string') set.add(id);
    affected.set(org, set);
  };
  for (const { organizationId: org, type, payload: p } of events) {
    if (type === 'group.members_changed') add(org, [...((p.added as string[]) ?? []), ...((p.removed as string[]) ?? [])]);
    else if (type === 'group.deleted') add(org, p.removed);
    else if (type === 'member.joined') add(org, p.accountId);
    else if (type === 'group.updated') add(org, await membersOfMappedGroups(tx, org, p.groupId as string, null));
    else if (type.startsWith('mapping.')) {
      add(org, await membersOfMappedGroups(tx, org, (p.groupId as string) ?? null, (p.groupName as string) ?? null));
    }
  }
  for (const [org, ids] of affected) {
    const all = [...ids];
    for (let i = 0; i < all.length; i += BATCH) await recomputeMappedRoles(tx, org, all.slice(i, i + BATCH), actor);
  }
};

/** The periodic full pass: every membership of every organization, in batches; repairs drift. */
export async function repairMappedRoles(sql: Sql): Promise<number> {
  let changed = 0;
  let after: { org: string; account: string } | null = null;
  for (;;) {
    const cursor: { org: string; account: string } | null = after;
    const page: { organizationId: string; accountId: string }[] = await sql`
      select organization_id, account_id from memberships
      where status <> 'removed'
        ${cursor ? sql`and (organization_id, account_id) > (${cursor.org}::uuid, ${cursor.account}::uuid)` : sql``}
      order by organization_id, account_id limit ${BATCH}`;
    if (page.length === 0) return changed;
    const byOrg = new Map<string, string[]>();
    for (const m of page) byOrg.set(m.organizationId, [...(byOrg.get(m.organizationId) ?? []), m.accountId]);
    for (const [org, ids] of byOrg) changed += await sql.begin((tx) => recomputeMappedRoles(tx, org, ids, actor));
    const last = page[page.length - 1]!;
    after = { org: last.organizationId, account: last.accountId };
  }
}
