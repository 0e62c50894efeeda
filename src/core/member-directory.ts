import { z } from 'zod';
import type { Db, Fragment } from '../storage/database.ts';
import { invalid } from './errors.ts';
import { isStorableDate } from './limits.ts';
import { effectiveRoles, type MembershipSource, type MembershipStatus } from './memberships.ts';
import type { Permission } from './permissions.ts';
import { BUILT_IN_ROLES } from './roles.ts';

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

/** Members (active and suspended) and pending invitations are listed apart. */
export type MemberTab = 'members' | 'invitations';
export const MEMBER_SORTS = ['name', 'email', 'status', 'joined', 'lastActive'] as const;
export type MemberSort = (typeof MEMBER_SORTS)[number];

export interface MemberListQuery {
  tab?: MemberTab;
  sort?: MemberSort;
  order?: 'asc' | 'desc';
  status?: MemberStatus;
  role?: string;
  /** Prefix of the email, the full name or the family name, any case. */
  search?: string;
  /** Part of the email anywhere (older filter, not indexed). */
  email?: string;
  groupId?: string;
  /** The `next` of the previous page. */
  after?: string;
  limit: number;
}

/**
 * The key of each sort: the expression every index of migration 092 ends with before account_id.
 * Selected as text too, so the cursor carries it exactly (a JS Date would drop microseconds).
 */
function sortKey(db: Db, sort: MemberSort): Fragment {
  switch (sort) {
    case 'name':
      return db`m.name_key`;
    case 'email':
      return db`m.email_key`;
    case 'status':
      return db`m.status`;
    case 'joined':
      return db`m.created_at`;
    case 'lastActive':
      return db`coalesce(m.last_active_at, '-infinity'::timestamptz)`;
  }
}
const TEXT_SORT: Record<MemberSort, boolean> = {
  name: true,
  email: true,
  status: true,
  joined: false,
  lastActive: false,
};

export interface Cursor {
  sort: MemberSort;
  order: 'asc' | 'desc';
  key: string;
  id: string;
}
const cursorShape = z.object({
  sort: z.enum(MEMBER_SORTS),
  order: z.enum(['asc', 'desc']),
  key: z.string().max(400),
  id: z.uuid(),
});
/** The cursor of the row with this sort key and id (a benchmark starts deep pages with it). */
export const encodeCursor = (c: Cursor) => Buffer.from(JSON.stringify(c)).toString('base64url');
function decodeCursor(text: string, sort: MemberSort, order: 'asc' | 'desc'): Cursor {
  let parsed: ReturnType<typeof cursorShape.safeParse>;
  try {
    parsed = cursorShape.safeParse(JSON.parse(Buffer.from(text, 'base64url').toString('utf8')));
  } catch {
    throw invalid('after: not a cursor of this list (pass the `next` of the previous page)');
  }
  if (!parsed.success || parsed.data.sort !== sort || parsed.data.order !== order)
    throw invalid('after: not a cursor of this list and sort (pass the `next` of the previous page)');
  if (!TEXT_SORT[sort] && !isStorableDate(new Date(parsed.data.key)) && parsed.data.key !== '-infinity')
    throw invalid('after: not a cursor of this list');
  return parsed.data;
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** The conditions shared by a page and its count (the tab first: every list index leads with it). */
function listConditions(db: Db, organizationId: string, query: MemberListQuery, tab: MemberTab): Fragment {
  const prefix = query.search ? escapeLike(query.search.trim().toLowerCase()) + '%' : null;
  return db`m.organization_id = ${organizationId} and m.list_tab = ${tab}
    ${query.status ? db`and m.status = ${STATUS[query.status]}` : db``}
    ${prefix ? db`and (m.email_key like ${prefix} or m.name_key like ${prefix} or m.family_key like ${prefix})` : db``}
    ${query.role ? db`and (${query.role} = any(m.roles) or ${query.role} = any(m.mapped_roles))` : db``}
    ${query.email ? db`and m.email_key like ${'%' + escapeLike(query.email.toLowerCase()) + '%'}` : db``}
    ${query.groupId ? db`and exists (select 1 from group_members gm where gm.organization_id = m.organization_id and gm.group_id = ${query.groupId}::uuid and gm.account_id = m.account_id)` : db``}`;
}

/**
 * Where a page's rows come from. A search reads its matches by their prefix indexes first and
 * sorts them (OFFSET 0 keeps the planner from walking the sort's index past every non-match).
 */
function fromMatches(db: Db, query: MemberListQuery, where: Fragment): Fragment {
  return query.search ? db`(select * from memberships m where ${where} offset 0) m` : db`memberships m`;
}

/**
 * The tab's total: from the counters of migration 094 (a few rows) when only the tab and status
 * are chosen, else a count of the matches.
 */
function countMembers(
  db: Db,
  organizationId: string,
  query: MemberListQuery,
  tab: MemberTab,
  where: Fragment,
): Promise<{ total: number }[]> {
  if (query.search || query.role || query.email || query.groupId)
    return db<{ total: number }[]>`select count(*)::int as total from memberships m where ${where}`;
  return db<{ total: number }[]>`
    select coalesce(sum(n), 0)::int as total from member_counts
    where organization_id = ${organizationId} and list_tab = ${tab}
      ${query.status ? db`and status = ${STATUS[query.status]}` : db``}`;
}

/**
 * A page of one tab of the organization's members (removed ones never listed), sorted by name,
 * email, status, joined or last activity, ties by account id. Pages follow a keyset cursor (the
 * sort key and account id of the last row), so page 2,000 costs what page 1 costs; each sort has
 * its index (migration 092). `total` counts the whole filtered tab. Pending members come with
 * their invitation, looked up for the page's rows only (by the one-pending index).
 */
export async function listMembers(
  db: Db,
  organizationId: string,
  query: MemberListQuery,
): Promise<{ items: MemberView[]; next: string | null; total: number }> {
  const tab: MemberTab =
    query.status === 'pending' ? 'invitations' : query.status ? 'members' : (query.tab ?? 'members');
  const sort = query.sort ?? 'name';
  const order = query.order ?? 'asc';
  const cursor = query.after ? decodeCursor(query.after, sort, order) : null;
  const key = sortKey(db, sort);
  const where = listConditions(db, organizationId, query, tab);
  const direction = order === 'asc' ? db`asc` : db`desc`;
  // Through text: a timestamptz parameter would pass a JS Date and lose the microseconds.
  const cursorKey = cursor ? (TEXT_SORT[sort] ? db`${cursor.key}` : db`${cursor.key}::text::timestamptz`) : null;
  const after = cursor
    ? order === 'asc'
      ? db`and (${key}, m.account_id) > (${cursorKey}, ${cursor.id}::uuid)`
      : db`and (${key}, m.account_id) < (${cursorKey}, ${cursor.id}::uuid)`
    : db``;
  type Row = Omit<MemberView, 'status' | 'effectiveRoles' | 'invitation'> & {
    status: MembershipStatus;
    cursorKey: string;
    invitationId: string | null;
    invitedAt: Date | null;
    invitationExpiresAt: Date | null;
  };
  const [rows, [counted]] = await Promise.all([
    db<Row[]>`
      with page as (
        select m.organization_id, m.account_id, m.status, m.source, m.roles, m.mapped_roles,
               m.last_active_at, m.created_at, ${key} as sort_value, ${key}::text as cursor_key
        from ${fromMatches(db, query, where)} where ${where} ${after}
        order by ${key} ${direction}, m.account_id ${direction} limit ${query.limit}
      )
      select p.account_id, a.email, a.given_name, a.family_name, p.status, p.source, p.roles, p.mapped_roles,
             p.last_active_at, p.created_at, p.cursor_key,
             i.id as invitation_id, i.created_at as invited_at, i.expires_at as invitation_expires_at
      from page p join accounts a on a.id = p.account_id
      left join invitations i on p.status = 'invited' and i.organization_id = p.organization_id
        and i.account_id = p.account_id and i.status = 'pending'
      order by p.sort_value ${direction}, p.account_id ${direction}`,
    countMembers(db, organizationId, query, tab, where),
  ]);
  const items: MemberView[] = rows.map(({ invitationId, invitedAt, invitationExpiresAt, cursorKey: _k, ...r }) => ({
    ...r,
    status: (r.status === 'invited' ? 'pending' : r.status) as MemberStatus,
    effectiveRoles: effectiveRoles(r),
    invitation: invitationId ? { id: invitationId, createdAt: invitedAt!, expiresAt: invitationExpiresAt! } : null,
  }));
  const last = rows[rows.length - 1];
  const next =
    last && rows.length === query.limit ? encodeCursor({ sort, order, key: last.cursorKey, id: last.accountId }) : null;
  return { items, next, total: counted!.total };
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

/**
 * The email addresses of active members whose effective roles (direct or mapped, built-in or
 * custom) grant `permission`, alphabetically, at most `limit`.
 */
export async function emailsOfMembersWith(
  db: Db,
  organizationId: string,
  permission: Permission,
  limit: number,
): Promise<string[]> {
  const builtIn = Object.entries(BUILT_IN_ROLES)
    .filter(([, role]) => role.permissions.includes(permission))
    .map(([key]) => key);
  const rows = await db<{ email: string }[]>`
    select a.email from memberships m join accounts a on a.id = m.account_id
    where m.organization_id = ${organizationId} and m.status = 'active'
      and (m.roles || m.mapped_roles) && (${builtIn}::text[] || array(
        select key from roles where organization_id = ${organizationId} and ${permission} = any (permissions)))
    order by a.email limit ${limit}`;
  return rows.map((r) => r.email);
}
