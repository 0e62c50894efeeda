import type { Db, Fragment, Tx } from '../storage/database.ts';
import { firstRow, inTransaction } from '../storage/database.ts';
import type { Actor } from './actor.ts';
import { assertHoldsPermissionsOf } from './authority.ts';
import { DomainError, invalid, notFound, ruleViolation } from './errors.ts';
import { changeRecordSteps, recordChange } from './events.ts';
import type { Group, GroupSource } from './groups.ts';
import { completeInvitation, lockPendingInvitation, markInvitationsExpired } from './invitation-lifecycle.ts';
import { assertSingleOrganization } from './policy.ts';
import type { Permission } from './permissions.ts';
import { OWNER_ROLE, assertRolesExist, permissionsOf } from './roles.ts';

export type MembershipStatus = 'invited' | 'active' | 'suspended' | 'removed';
export type MembershipSource = 'admin' | 'invite' | 'scim' | 'sso';

export interface Membership {
  organizationId: string;
  accountId: string;
  status: MembershipStatus;
  source: MembershipSource;
  roles: string[];
  mappedRoles: string[];
  lastActiveAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** Directly assigned roles combined with the roles group mappings grant. */
export function effectiveRoles(m: Pick<Membership, 'roles' | 'mappedRoles'>): string[] {
  return [...new Set([...m.roles, ...m.mappedRoles])];
}

export async function effectivePermissions(db: Db, m: Membership): Promise<Permission[]> {
  return m.status === 'active' ? permissionsOf(db, m.organizationId, effectiveRoles(m)) : [];
}

export async function getMembership(db: Db, organizationId: string, accountId: string): Promise<Membership | null> {
  const [row] = await db<Membership[]>`
    select * from memberships where organization_id = ${organizationId} and account_id = ${accountId}`;
  return row ?? null;
}

/** What memberByEmail finds: an account's id, its membership and its groups of one source. */
export interface MemberByEmail {
  accountId: string;
  membership: Membership | null;
  groups: Pick<Group, 'id' | 'displayName'>[];
}

/**
 * The account with this email, its membership in the organization and its groups of `source`
 * (as groupsOfMember answers them), read by one statement (so as of one moment); null when no
 * account has the email. A sign-in sends it together with findAccountByEmail: one round trip
 * for what the join rules read first.
 */
export async function memberByEmail(
  db: Db,
  organizationId: string,
  email: string,
  source: GroupSource,
): Promise<MemberByEmail | null> {
  const [row] = await db<(Membership & { accountKey: string; memberGroups: MemberByEmail['groups'] })[]>`
    select a.id as account_key, m.*,
           (select coalesce(json_agg(json_build_object('id', g.id, 'displayName', g.display_name)), '[]')
            from groups g join group_members gm on gm.organization_id = g.organization_id and gm.group_id = g.id
            where g.organization_id = ${organizationId} and g.source = ${source} and gm.account_id = a.id) as member_groups
    from accounts a
    left join memberships m on m.organization_id = ${organizationId} and m.account_id = a.id
    where lower(a.email) = lower(${email.trim()})`;
  if (!row) return null;
  const { accountKey, memberGroups, ...membership } = row;
  return { accountId: accountKey, membership: membership.accountId ? membership : null, groups: memberGroups };
}

async function lockMembership(tx: Tx, organizationId: string, accountId: string): Promise<Membership | null> {
  const [row] = await tx<Membership[]>`
    select * from memberships where organization_id = ${organizationId} and account_id = ${accountId} for update`;
  return row ?? null;
}

const target = (accountId: string) => ({ type: 'account', id: accountId });

/**
 * Makes the account an active member: the one place a person joins (SCIM, SSO, a verified domain,
 * an invitation link, a new organization's owner). New or previously removed members start with
 * `roles` (default: the organization's default role); a pending invitation is accepted (with the
 * roles and local groups chosen when inviting); one past its expiry is expired first, and the
 * person joins as if never invited; an active member is left as is. A suspended member is
 * refused: only reactivation (by whoever suspended them) lifts a suspension. Under the
 * single-organization policy someone who belongs elsewhere is refused.
 */
export async function joinOrganization(
  db: Db,
  input: {
    organizationId: string;
    accountId: string;
    source: MembershipSource;
    roles?: string[];
    liftSuspension?: boolean;
  },
  actor: Actor,
): Promise<{ membership: Membership; joined: boolean; invitation?: { id: string; groupIds: string[] } }> {
  return inTransaction(db, async (tx) => {
    const [existing, organizationDefaultRole] = await Promise.all([
      lockMembership(tx, input.organizationId, input.accountId),
      // Sent with the lock (pipelined): most joins are new members, who need it.
      input.roles ? undefined : defaultRole(tx, input.organizationId),
    ]);
    if (existing?.status === 'active') return { membership: existing, joined: false };
    if (existing?.status === 'suspended') {
      // The IdP (SCIM) is authoritative and may provision a suspended member again.
      if (!input.liftSuspension) throw ruleViolation('the membership is suspended', { accountId: input.accountId });
      return { membership: await reactivateMember(tx, input.organizationId, input.accountId, actor), joined: false };
    }
    await assertSingleOrganization(tx, input.organizationId, input.accountId);

    const announce = (joined: Pick<Membership, 'source' | 'roles'>) => {
      const details = { source: joined.source, roles: joined.roles, via: input.source };
      return recordChange(tx, input.organizationId, actor, {
        action: 'member.joined',
        target: target(input.accountId),
        details,
        event: 'member.joined',
        payload: { accountId: input.accountId, ...details },
      });
    };
    const pending =
      existing?.status === 'invited' ? await lockPendingInvitation(tx, input.organizationId, input.accountId) : null;
    if (pending?.live) {
      const membership = firstRow(
        await tx<Membership[]>`
        update memberships set status = 'active', updated_at = now(), last_active_at = now()
        where organization_id = ${input.organizationId} and account_id = ${input.accountId}
        returning *`,
      );
      await announce(membership);
      const { groupIds } = await completeInvitation(tx, pending, actor, input.source);
      return { membership, joined: true, invitation: { id: pending.id, groupIds } };
    }
    // Past its expiry, not swept yet: expired exactly as the reconciler would.
    if (pending) await markInvitationsExpired(tx, [pending], actor);
    const roles = input.roles ?? [organizationDefaultRole!];
    await assertRolesExist(tx, input.organizationId, roles);
    // Under the lock the membership is absent, removed, or invited without a live invitation.
    const joinedRows = await tx<Membership[]>`
      with ${newMemberSteps(tx, 'joined', {
        organizationId: input.organizationId,
        accountId: tx`${input.accountId}::uuid`,
        source: input.source,
        roles,
        replacing: ['removed', 'invited'],
        actor,
      })}
      select ${membershipColumns(tx)} from joined`;
    return { membership: firstRow(joinedRows), joined: true };
  });
}

async function defaultRole(db: Db, organizationId: string): Promise<string> {
  const [org] = await db<
    { defaultRole: string }[]
  >`select default_role from organizations where id = ${organizationId}`;
  if (!org) throw notFound('organization', { organizationId });
  return org.defaultRole;
}

/** How an admin change treats a member the IdP manages through SCIM. */
export interface IdpOverride {
  /** Change the member anyway (audited as `idpOverride: true`); without it the change is refused. */
  overrideIdp?: boolean;
}

/**
 * A member provisioned through SCIM belongs to the IdP: a change made here would be undone, or
 * contradicted, by its next push. Other channels need an explicit override, which the change's
 * audit entry records. Answers the audit details to add.
 */
function checkIdpManaged(member: Membership, actor: Actor, options: IdpOverride, what: string): { idpOverride?: true } {
  if (member.source !== 'scim' || actor.channel === 'scim') return {};
  if (options.overrideIdp) return { idpOverride: true };
  throw ruleViolation(
    `this member is managed by the organization's identity provider through SCIM: ${what} in the IdP, ` +
      'or repeat the request with overrideIdp: true to do it here anyway',
    { accountId: member.accountId, managedBy: 'scim' },
  );
}

/** Suspends an active member (reversible). Suspended members have no permissions and cannot sign in. */
export function suspendMember(
  db: Db,
  organizationId: string,
  accountId: string,
  actor: Actor,
  options: IdpOverride = {},
): Promise<Membership> {
  return changeStatus(db, organizationId, accountId, ['active'], 'suspended', 'member.suspended', actor, {
    idp: { ...options, what: 'suspend them' },
  });
}

export function reactivateMember(db: Db, organizationId: string, accountId: string, actor: Actor): Promise<Membership> {
  return changeStatus(db, organizationId, accountId, ['suspended'], 'active', 'member.reactivated', actor);
}

/**
 * Ends a membership; the account stays. Through the admin API nobody removes themselves (they
 * leave instead) and the last owner stays; the IdP (SCIM) is authoritative and skips those rules.
 */
export async function removeMember(
  db: Db,
  organizationId: string,
  accountId: string,
  actor: Actor,
  options: IdpOverride = {},
): Promise<Membership> {
  if (actor.channel !== 'scim' && actor.type === 'account' && actor.id === accountId) {
    throw ruleViolation('you cannot remove yourself; leave the organization instead', { accountId });
  }
  return changeStatus(
    db,
    organizationId,
    accountId,
    ['invited', 'active', 'suspended'],
    'removed',
    'member.removed',
    actor,
    {
      authorize: (tx, current) => assertMayManageMember(tx, current, actor, 'remove a member with the role(s)'),
      idp: { ...options, what: 'remove them' },
    },
  );
}

/**
 * A caller limited by its own permissions may change or remove only a member whose permissions it
 * holds: those of the member's effective roles, whatever the membership's status (an invited or
 * suspended owner is still an owner to be).
 */
export function assertMayManageMember(db: Db, member: Membership, actor: Actor, reason: string): Promise<void> {
  return assertHoldsPermissionsOf(db, member.organizationId, actor, [{ roles: effectiveRoles(member), reason }]);
}

/** The member ends their own membership; the last owner cannot. */
export async function leaveOrganization(
  db: Db,
  organizationId: string,
  accountId: string,
  actor: Actor,
): Promise<Membership> {
  try {
    return await changeStatus(db, organizationId, accountId, ['active', 'suspended'], 'removed', 'member.left', actor);
  } catch (error) {
    // Said to the person leaving, with what to do about it.
    if (error instanceof DomainError && error.details.lastOwner)
      throw ruleViolation(
        'you are the last owner of this organization: make another member an owner before you leave',
        error.details,
      );
    throw error;
  }
}

async function changeStatus(
  db: Db,
  organizationId: string,
  accountId: string,
  from: MembershipStatus[],
  to: MembershipStatus,
  action: string,
  actor: Actor,
  checks: {
    authorize?: (tx: Tx, current: Membership) => Promise<void>;
    idp?: IdpOverride & { what: string };
  } = {},
): Promise<Membership> {
  return inTransaction(db, async (tx) => {
    const current = await lockMembership(tx, organizationId, accountId);
    if (!current || current.status === 'removed') throw notFound('member', { accountId });
    if (current.status === to) return current;
    await checks.authorize?.(tx, current);
    const override = checks.idp ? checkIdpManaged(current, actor, checks.idp, checks.idp.what) : {};
    if (!from.includes(current.status)) {
      throw ruleViolation(`a ${current.status} membership cannot become ${to}`, { accountId, status: current.status });
    }
    if (to !== 'active' && actor.channel !== 'scim') await assertAnotherOwnerRemains(tx, current);
    const [updated] = await tx<Membership[]>`
      with ${statusChangeSteps(tx, 'changed', { organizationId, accountId, from, to, action, actor, details: override })}
      select ${membershipColumns(tx)} from changed`;
    return updated!;
  });
}

/** The columns of a membership row (steps below return more). */
export const membershipColumns = (db: Db): Fragment =>
  db`organization_id, account_id, status, source, roles, mapped_roles, last_active_at, created_at, updated_at`;

/**
 * What a change of status writes, as steps of one statement (a CTE), so that SCIM's writes can
 * carry it in their own single statement and changeStatus runs the same SQL: the membership
 * (locked) moves to `to` when its status is one of `from` (and `when`, a condition over other
 * steps, holds); leaving ends its group memberships and revokes its pending invitation; any
 * status but active ends its sessions; the change is audited and announced with the status it
 * had. The step `name` holds the changed row (none when nothing applied) and its `previous`
 * status. Refusals (the last owner, a caller's permissions) are the caller's to check first.
 */
export function statusChangeSteps(
  db: Db,
  name: string,
  change: {
    organizationId: string;
    /** The account, or an expression naming it (from another step). */
    accountId: string | Fragment;
    from: readonly MembershipStatus[];
    to: MembershipStatus;
    action: string;
    actor: Actor;
    when?: Fragment;
    /** Added to the audit details and the event payload (e.g. an IdP override). */
    details?: Record<string, unknown>;
  },
): Fragment {
  const { organizationId, accountId, to } = change;
  const extra = db`${db.json((change.details ?? {}) as never)}::jsonb`;
  const step = (suffix: string) => db(`${name}${suffix}`);
  const changed = db(name);
  const applied = db`exists (select 1 from ${changed})`;
  return db`
    ${step('_before')} as (
      select status from memberships
      where organization_id = ${organizationId} and account_id = ${accountId}
      for update
    ),
    ${changed} as (
      update memberships m set status = ${to}, updated_at = now()
      from ${step('_before')} b
      where m.organization_id = ${organizationId} and m.account_id = ${accountId}
        and b.status = any(${change.from as string[]}::text[]) ${change.when ? db`and ${change.when}` : db``}
      returning m.*, b.status as previous
    ),
    ${
      to === 'removed'
        ? db`
    ${step('_groups')} as (
      delete from group_members
      where organization_id = ${organizationId} and account_id = ${accountId} and ${applied}
    ),
    ${step('_invitations')} as (
      update invitations set status = 'revoked', updated_at = now()
      where organization_id = ${organizationId} and account_id = ${accountId} and status = 'pending' and ${applied}
    ),`
        : db``
    }
    ${
      to !== 'active'
        ? db`
    ${step('_sessions')} as (
      update sessions set revoked_at = now()
      where organization_id = ${organizationId} and account_id = ${accountId} and revoked_at is null and ${applied}
    ),`
        : db``
    }
    ${changeRecordSteps(db, name, organizationId, change.actor, {
      action: change.action,
      target: { type: 'account', id: db`${accountId}` },
      details: db`jsonb_build_object('from', previous, 'to', ${to}::text) || ${extra}`,
      event: change.action === 'member.left' ? 'member.removed' : change.action,
      payload: db`jsonb_build_object('accountId', ${accountId}::text, 'from', previous, 'to', ${to}::text) || ${extra}`,
      rows: db`${changed}`,
    })}`;
}

/**
 * A new member (or a returning one, when the membership's status is one of `replacing`) joins
 * active with `roles` (default: the organization's default role), as steps of one statement;
 * audited and announced as member.joined. The step `name` holds the membership row (none when
 * the membership was in another state). `accountId` is an expression (it may come from another
 * step); `when` a further condition. The rules of who may join are joinOrganization's.
 */
export function newMemberSteps(
  db: Db,
  name: string,
  join: {
    organizationId: string;
    accountId: Fragment;
    source: MembershipSource;
    roles?: readonly string[];
    replacing: readonly MembershipStatus[];
    actor: Actor;
    when?: Fragment;
  },
): Fragment {
  const { organizationId, source } = join;
  const joined = db(name);
  const roles = join.roles ? db`${join.roles as string[]}::text[]` : db`array[o.default_role]`;
  return db`
    ${joined} as (
      insert into memberships (organization_id, account_id, status, source, roles, last_active_at)
      select o.id, ${join.accountId}, 'active', ${source}, ${roles}, now()
      from organizations o
      where o.id = ${organizationId} ${join.when ? db`and ${join.when}` : db``}
      on conflict (organization_id, account_id) do update set
        status = 'active', source = excluded.source, roles = excluded.roles, mapped_roles = '{}',
        updated_at = now(), last_active_at = now()
      where memberships.status = any(${join.replacing as string[]}::text[])
      returning *
    ),
    ${changeRecordSteps(db, name, organizationId, join.actor, {
      action: 'member.joined',
      target: { type: 'account', id: db`account_id::text` },
      details: db`jsonb_build_object('source', source, 'roles', roles, 'via', ${source}::text)`,
      event: 'member.joined',
      payload: db`jsonb_build_object('accountId', account_id, 'source', source, 'roles', roles, 'via', ${source}::text)`,
      rows: db`${joined}`,
    })}`;
}

/** Replaces the directly assigned roles (also while an invitation is pending). */
export async function setRoles(
  db: Db,
  organizationId: string,
  accountId: string,
  roles: string[],
  actor: Actor,
  options: IdpOverride = {},
): Promise<Membership> {
  const wanted = [...new Set(roles)];
  if (wanted.length === 0) throw invalid('a member needs at least one role');
  return inTransaction(db, async (tx) => {
    await assertRolesExist(tx, organizationId, wanted);
    const current = await lockMembership(tx, organizationId, accountId);
    if (!current || current.status === 'removed') throw notFound('member', { accountId });
    await assertHoldsPermissionsOf(tx, organizationId, actor, [
      { roles: effectiveRoles(current), reason: 'change the roles of a member with the role(s)' },
      { roles: symmetricDifference(current.roles, wanted), reason: 'grant or take away the role(s)' },
    ]);
    const override = checkIdpManaged(current, actor, options, 'change their roles');
    const next = { ...current, roles: wanted };
    if (effectiveRoles(current).includes(OWNER_ROLE) && !effectiveRoles(next).includes(OWNER_ROLE)) {
      await assertAnotherOwnerRemains(tx, current);
    }
    const [updated] = await tx<Membership[]>`
      update memberships set roles = ${wanted}::text[], updated_at = now()
      where organization_id = ${organizationId} and account_id = ${accountId}
      returning *`;
    await recordRoleChange(tx, current, updated!, actor, override);
    return updated!;
  });
}

/** Roles in one list and not the other: what a change of roles grants or takes away. */
export function symmetricDifference(before: readonly string[], after: readonly string[]): string[] {
  return [...before.filter((r) => !after.includes(r)), ...after.filter((r) => !before.includes(r))];
}

/** Audits and announces a change of effective roles; a no-op when they did not change. */
export async function recordRoleChange(
  db: Db,
  before: Membership,
  after: Membership,
  actor: Actor,
  details: Record<string, unknown>,
): Promise<void> {
  const from = effectiveRoles(before).sort();
  const to = effectiveRoles(after).sort();
  if (from.join() === to.join() && before.roles.join() === after.roles.join()) return;
  const body = { from, to, roles: after.roles, mappedRoles: after.mappedRoles, ...details };
  await recordChange(db, after.organizationId, actor, {
    action: 'member.role_changed',
    target: target(after.accountId),
    details: body,
    event: 'member.role_changed',
    payload: { accountId: after.accountId, ...body },
  });
}

/**
 * Refuses a change that would leave an active owner-less organization. The organization row lock
 * serialises concurrent owner changes, so two owners cannot demote each other at once.
 */
export async function assertAnotherOwnerRemains(tx: Tx, member: Membership): Promise<void> {
  if (member.status !== 'active' || !effectiveRoles(member).includes(OWNER_ROLE)) return;
  await tx`select 1 from organizations where id = ${member.organizationId} for update`;
  const [other] = await tx`
    select 1 from memberships
    where organization_id = ${member.organizationId} and account_id <> ${member.accountId}
      and status = 'active' and ('owner' = any (roles) or 'owner' = any (mapped_roles))
    limit 1`;
  if (!other)
    throw ruleViolation('the last owner of an organization cannot be removed or demoted', {
      accountId: member.accountId,
      lastOwner: true,
    });
}

/**
 * A page of the keys of every organization's memberships that are not removed, in key order,
 * after `cursor` (for passes over all of them, such as the role-mapping repair).
 */
export function membershipKeysAfter(
  db: Db,
  cursor: { org: string; account: string } | null,
  limit: number,
): Promise<{ organizationId: string; accountId: string }[]> {
  return db<{ organizationId: string; accountId: string }[]>`
    select organization_id, account_id from memberships
    where status <> 'removed'
      ${cursor ? db`and (organization_id, account_id) > (${cursor.org}::uuid, ${cursor.account}::uuid)` : db``}
    order by organization_id, account_id limit ${limit}`;
}
