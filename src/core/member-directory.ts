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
  /** A pending member's invitation (to resend or withdraw it); null for everyone else. */
  invitation: { id: string; createdAt: Date; expiresAt: Date } | null;
}

const STATUS: Record<MemberStatus, MembershipStatus> = { active: 'active', pending: 'invited', suspended: 'suspended' };

/**
 * A page of the organization's members (removed ones excluded), in account id order so the
 * next page starts from an index position whatever the organization's size. Pending members
 * come with their invitation, looked up for the page's rows only (by the one-pending index).
 */
export async function listMembers(
  db: Db,
  organizationId: string,
  query: { status?: MemberStatus; role?: string; email?: string; groupId?: string; after?: string; limit: number },
): Promise<{ items: MemberView[]; next: string | null }> {
  type Row = Omit<MemberView, 'status' | 'effectiveRoles' | 'invitation'> & {
    status: MembershipStatus;
    invitationId: string | null;
    invitedAt: Date | null;
    invitationExpiresAt: Date | null;
  };
  const rows = await db<Row[]>`
    with page as (
      select m.organization_id, m.account_id, a.email, a.given_name, a.family_name, m.status, m.source, m.roles, m.mapped_roles,
             m.last_active_at, m.created_at
      from memberships m join accounts a on a.id = m.account_id
      where m.organization_id = ${organizationId}
        and ${query.status ? db`m.status = ${STATUS[query.status]}` : db`m.status <> 'removed'`}
        ${query.role ? db`and (${query.role} = any(m.roles) or ${query.role} = any(m.mapped_roles))` : db``}
        ${query.email ? db`and lower(a.email) like ${'%' + escapeLike(query.email.toLowerCase()) + '%'}` : db``}
        ${query.groupId ? db`and exists (select 1 from group_members gm where gm.organization_id = m.organization_id and gm.group_id = ${query.groupId}::uuid and gm.account_id = m.account_id)` : db``}
        ${query.after ? db`and m.account_id > ${query.after}::uuid` : db``}
      order by m.account_id
      limit ${query.limit}
    )
    select p.account_id, p.email, p.given_name, p.family_name, p.status, p.source, p.roles, p.mapped_roles,
           p.last_active_at, p.created_at,
           i.id as invitation_id, i.created_at as invited_at, i.expires_at as invitation_expires_at
    from page p
    left join invitations i on p.status = 'invited' and i.organization_id = p.organization_id
      and i.account_id = p.account_id and i.status = 'pending'
    order by p.account_id`;
  const items: MemberView[] = rows.map(({ invitationId, invitedAt, invitationExpiresAt, ...r }) => ({
    ...r,
    status: (r.status === 'invited' ? 'pending' : r.status) as MemberStatus,
    effectiveRoles: effectiveRoles(r),
    invitation: invitationId ? { id: invitationId, createdAt: invitedAt!, expiresAt: invitationExpiresAt! } : null,
  }));
  return { items, next: items.length === query.limit ? items[items.length - 1]!.accountId : null };
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** The addresses of an organization's active owners (directly or through a group mapping). */
export async function activeOwnerEmails(db: Db, organizationId: string): Promise<string[]> {
  const rows = await db<{ email: string }[]>`
    select a.email from memberships m join accounts a on a.id = m.account_id
    where m.organization_id = ${organizationId} and m.status = 'active'
      and ('owner' = any(m.roles) or 'owner' = any(m.mapped_roles))
    order by a.email`;
  return rows.map((r) => r.email);
}
