import type { Db } from '../storage/database.ts';
import { effectiveRoles, type MembershipSource, type MembershipStatus } from './memberships.ts';

/** How the admin API shows a membership: 'invited' is called 'pending' there. */
export type MemberStatus = 'active' | 'pending' | 'suspended';

export interface MemberView {
  accountId: string;
  email: string;
  givenName: string | null;
  familyName: string | null;
  status: MemberStatus;
  source: MembershipSource;
  roles: string[];
  mappedRoles: string[];
  effectiveRoles: string[];
  lastActiveAt: Date | null;
  createdAt: Date;
}

const STATUS: Record<MemberStatus, MembershipStatus> = { active: 'active', pending: 'invited', suspended: 'suspended' };

/**
 * A page of the organization's members (removed ones excluded), in account id order so the
 * next page starts from an index position whatever the organization's size.
 */
export async function listMembers(
  db: Db,
  organizationId: string,
  query: { status?: MemberStatus; role?: string; email?: string; groupId?: string; after?: string; limit: number },
): Promise<{ items: MemberView[]; next: string | null }> {
  const rows = await db<(Omit<MemberView, 'status' | 'effectiveRoles'> & { status: MembershipStatus })[]>`
    select m.account_id, a.email, a.given_name, a.family_name, m.status, m.source, m.roles, m.mapped_roles,
           m.last_active_at, m.created_at
    from memberships m join accounts a on a.id = m.account_id
    where m.organization_id = ${organizationId}
      and ${query.status ? db`m.status = ${STATUS[query.status]}` : db`m.status <> 'removed'`}
      ${query.role ? db`and (${query.role} = any(m.roles) or ${query.role} = any(m.mapped_roles))` : db``}
      ${query.email ? db`and lower(a.email) like ${'%' + escapeLike(query.email.toLowerCase()) + '%'}` : db``}
      ${query.groupId ? db`and exists (select 1 from group_members gm where gm.organization_id = m.organization_id and gm.group_id = ${query.groupId}::uuid and gm.account_id = m.account_id)` : db``}
      ${query.after ? db`and m.account_id > ${query.after}::uuid` : db``}
    order by m.account_id
    limit ${query.limit}`;
  const items = rows.map((r) => ({
    ...r,
    status: (r.status === 'invited' ? 'pending' : r.status) as MemberStatus,
    effectiveRoles: effectiveRoles(r),
  }));
  return { items, next: items.length === query.limit ? items[items.length - 1]!.accountId : null };
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
