import type { Db, Tx } from '../storage/database.ts';
import { firstRow, inTransaction } from '../storage/database.ts';
import { ensureAccount, getAccount, isValidEmail, normalizeEmail } from './accounts.ts';
import type { Actor } from './actor.ts';
import { recordAudit } from './audit.ts';
import { assertHoldsPermissionsOf, heldPermissions, rolesMappedToGroups } from './authority.ts';
import { conflict, DomainError, invalid, notFound } from './errors.ts';
import { emitEvent } from './events.ts';
import { isUuid } from './ids.ts';
import { assertMayManageMember, joinOrganization, type Membership } from './memberships.ts';
import { assertSingleOrganization } from './policy.ts';
import { assertRolesExist } from './roles.ts';
import { generateSecret, hashSecret, sealSecret } from './secrets.ts';

export interface Invitation {
  organizationId: string;
  id: string;
  accountId: string;
  email: string;
  groupIds: string[];
  status: 'pending' | 'accepted' | 'expired' | 'revoked';
  invitedBy: string;
  expiresAt: Date;
  acceptedAt: Date | null;
  createdAt: Date;
}

export interface InviteRequest {
  email: string;
  givenName?: string;
  familyName?: string;
  roles?: string[];
  groupIds?: string[];
}

export type InviteResult =
  | { email: string; invited: true; invitation: Invitation }
  | { email: string; invited: false; error: string; message: string };

const COLUMNS =
  'organization_id, id, account_id, email, group_ids, status, invited_by, expires_at, accepted_at, created_at';

/**
 * Invites each address on its own: a bad address, an existing member or a pending invitation
 * is reported for that address and does not stop the others. Each invitation gets a single-use
 * token, stored hashed; the email (with the token sealed) leaves through the outbox.
 */
export async function inviteMembers(
  db: Db,
  serverSecret: string,
  organizationId: string,
  requests: InviteRequest[],
  actor: Actor,
): Promise<InviteResult[]> {
  await assertMayInvite(db, organizationId, requests, actor);
  const results: InviteResult[] = [];
  for (const request of requests) {
    try {
      const invitation = await inTransaction(db, (tx) =>
        tx.savepoint((sp) => inviteOne(sp, serverSecret, organizationId, request, actor)),
      );
      results.push({ email: request.email, invited: true, invitation });
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      results.push({ email: request.email, invited: false, error: error.code, message: error.message });
    }
  }
  return results;
}

/**
 * The roles every invitation grants (the default role when none is chosen), checked once for the
 * whole request: a caller lacking their permissions invites nobody (403).
 */
export async function assertMayInvite(
  db: Db,
  organizationId: string,
  requests: InviteRequest[],
  actor: Actor,
): Promise<void> {
  if (!heldPermissions(actor)) return;
  const needsDefault = requests.some((r) => !r.roles?.length);
  const [org] = needsDefault
    ? await db<{ defaultRole: string }[]>`select default_role from organizations where id = ${organizationId}`
    : [];
  const roles = requests.flatMap((r) => (r.roles?.length ? r.roles : org ? [org.defaultRole] : []));
  // Joining a local group on acceptance grants what the group's mappings grant.
  const mapped = await rolesMappedToGroups(db, organizationId, [...new Set(requests.flatMap((r) => r.groupIds ?? []))]);
  await assertHoldsPermissionsOf(db, organizationId, actor, [
    { roles, reason: 'invite with the role(s)' },
    { roles: mapped, reason: 'invite into a group mapped to the role(s)' },
  ]);
}

async function inviteOne(
  tx: Tx,
  serverSecret: string,
  organizationId: string,
  request: InviteRequest,
  actor: Actor,
): Promise<Invitation> {
  if (!isValidEmail(request.email)) throw invalid(`invalid email address: ${request.email}`);
  const email = normalizeEmail(request.email);
  const [org] = await tx<{ defaultRole: string; inviteTtlHours: number }[]>`
    select default_role, invite_ttl_hours from organizations where id = ${organizationId}`;
  if (!org) throw notFound('organization');
  const roles = request.roles?.length ? [...new Set(request.roles)] : [org.defaultRole];
  await assertRolesExist(tx, organizationId, roles);
  const groupIds = [...new Set(request.groupIds ?? [])];
  if (groupIds.length) {
    const found = await tx<{ id: string }[]>`
      select id from groups where organization_id = ${organizationId} and source = 'local'
        and id = any(${groupIds.filter(isUuid)}::uuid[])`;
    const unknown = groupIds.filter((g) => !found.some((f) => f.id === g));
    if (unknown.length) throw invalid(`unknown group(s): ${unknown.join(', ')}`, { groupIds: unknown });
  }
  const account = await ensureAccount(tx, { email, givenName: request.givenName, familyName: request.familyName });
  const [existing] = await tx<Membership[]>`
    select * from memberships where organization_id = ${organizationId} and account_id = ${account.id} for update`;
  if (existing?.status === 'active' || existing?.status === 'suspended') throw conflict(`${email} is already a member`);
  await assertSingleOrganization(tx, organizationId, account.id, email);
  if (existing?.status === 'invited') {
    const [pending] =
      await tx`select 1 from invitations where organization_id = ${organizationId} and account_id = ${account.id} and status = 'pending'`;
    if (pending) throw conflict(`${email} already has a pending invitation; resend it instead`);
  }
  await tx`
    insert into memberships (organization_id, account_id, status, source, roles)
    values (${organizationId}, ${account.id}, 'invited', 'invite', ${roles}::text[])
    on conflict (organization_id, account_id) do update set
      status = 'invited', source = 'invite', roles = excluded.roles, mapped_roles = '{}', updated_at = now()`;
  const token = generateSecret('invite');
  const invitation = firstRow(
    await tx<Invitation[]>`
      insert into invitations (organization_id, account_id, email, group_ids, status, token_hash, invited_by, expires_at)
      values (${organizationId}, ${account.id}, ${email}, ${groupIds}::uuid[], 'pending', ${hashSecret(token, serverSecret)},
              ${actor.name}, now() + make_interval(hours => ${org.inviteTtlHours}))
      returning ${tx.unsafe(COLUMNS)}`,
  );
  await announce(tx, serverSecret, invitation, token, roles, actor);
  return invitation;
}

async function announce(
  tx: Tx,
  serverSecret: string,
  inv: Invitation,
  token: string,
  roles: string[],
  actor: Actor,
): Promise<void> {
  const details = { invitationId: inv.id, email: inv.email, accountId: inv.accountId, roles, expiresAt: inv.expiresAt };
  await recordAudit(tx, inv.organizationId, actor, 'invite.created', { type: 'invitation', id: inv.id }, details);
  const inviter = await inviterOf(tx, actor);
  await emitEvent(
    tx,
    inv.organizationId,
    'invite.created',
    { ...details, invitedBy: actor.name, inviter, sealed: { token: sealSecret(token, serverSecret) } },
    actor,
  );
}

/** The person an invitation email names: a member who invited; null for an API key or the system (the email names the organization). */
async function inviterOf(tx: Tx, actor: Actor): Promise<{ name: string | null; email: string } | null> {
  if (actor.type !== 'account' || !actor.id) return null;
  const account = await getAccount(tx, actor.id);
  if (!account) return null;
  const name = [account.givenName, account.familyName].filter(Boolean).join(' ');
  return { name: name || null, email: account.email };
}

export async function listInvitations(
  db: Db,
  organizationId: string,
  status?: Invitation['status'],
): Promise<Invitation[]> {
  return db<Invitation[]>`
    select ${db.unsafe(COLUMNS)} from invitations
    where organization_id = ${organizationId} ${status ? db`and status = ${status}` : db``}
    order by created_at desc, id limit 500`;
}

/** A new token and a new expiry for a pending (or expired) invitation; the old link stops working. */
export async function resendInvitation(
  db: Db,
  serverSecret: string,
  organizationId: string,
  id: string,
  actor: Actor,
): Promise<Invitation> {
  if (!isUuid(id)) throw notFound('invitation', { id });
  return inTransaction(db, async (tx) => {
    const [current] = await tx<Invitation[]>`
      select ${tx.unsafe(COLUMNS)} from invitations where organization_id = ${organizationId} and id = ${id} for update`;
    if (!current) throw notFound('invitation', { id });
    if (current.status === 'accepted' || current.status === 'revoked')
      throw conflict(`the invitation was ${current.status}; invite again instead`);
    const [membership] = await tx<Membership[]>`
      select * from memberships where organization_id = ${organizationId} and account_id = ${current.accountId} for update`;
    if (membership?.status === 'active' || membership?.status === 'suspended')
      throw conflict(`${current.email} is already a member`);
    if (membership) await assertMayManageMember(tx, membership, actor, 'invite again with the role(s)');
    const mapped = heldPermissions(actor) ? await rolesMappedToGroups(tx, organizationId, current.groupIds) : [];
    await assertHoldsPermissionsOf(tx, organizationId, actor, [
      { roles: mapped, reason: 'invite again into a group mapped to the role(s)' },
    ]);
    await tx`update memberships set status = 'invited', updated_at = now()
             where organization_id = ${organizationId} and account_id = ${current.accountId}`;
    const token = generateSecret('invite');
    const invitation = firstRow(
      await tx<Invitation[]>`
        update invitations i set status = 'pending', token_hash = ${hashSecret(token, serverSecret)}, updated_at = now(),
          expires_at = now() + make_interval(hours => o.invite_ttl_hours)
        from organizations o
        where o.id = i.organization_id and i.organization_id = ${organizationId} and i.id = ${id}
        returning ${tx.unsafe(
          COLUMNS.split(', ')
            .map((c) => `i.${c}`)
            .join(', '),
        )}`,
    );
    await announce(tx, serverSecret, invitation, token, membership?.roles ?? [], actor);
    return invitation;
  });
}

export async function revokeInvitation(db: Db, organizationId: string, id: string, actor: Actor): Promise<void> {
  if (!isUuid(id)) throw notFound('invitation', { id });
  await inTransaction(db, async (tx) => {
    const [inv] = await tx<Invitation[]>`
      update invitations set status = 'revoked', updated_at = now()
      where organization_id = ${organizationId} and id = ${id} and status = 'pending'
      returning ${tx.unsafe(COLUMNS)}`;
    if (!inv) throw notFound('pending invitation', { id });
    const [membership] = await tx<Membership[]>`
      select * from memberships where organization_id = ${organizationId} and account_id = ${inv.accountId} for update`;
    if (membership) await assertMayManageMember(tx, membership, actor, 'withdraw an invitation with the role(s)');
    await tx`update memberships set status = 'removed', updated_at = now()
             where organization_id = ${organizationId} and account_id = ${inv.accountId} and status = 'invited'`;
    const details = { invitationId: id, email: inv.email, accountId: inv.accountId };
    await recordAudit(tx, organizationId, actor, 'invite.revoked', { type: 'invitation', id }, details);
    await emitEvent(tx, organizationId, 'invite.revoked', details, actor);
  });
}

export const SIGNED_IN_AS_SOMEONE_ELSE =
  'You are signed in as someone else. This invitation is for another address: sign out (or open the link in a private window), then open it again.';

/** Why a token cannot be used, in words for the person holding the link. */
export function invitationRefusal(status: Invitation['status'] | 'unknown' | 'past_expiry'): string {
  return {
    unknown: 'This invitation link is not valid. It may have been replaced by a newer one.',
    accepted: 'This invitation has already been accepted.',
    expired: "This invitation has expired. Ask the organization's administrator to send a new one.",
    past_expiry: "This invitation has expired. Ask the organization's administrator to send a new one.",
    revoked: 'This invitation was withdrawn by the organization.',
    pending: '',
  }[status];
}

/**
 * The invitation a token opens, with the account it is for; refuses used, expired or revoked
 * tokens. The hash stays after an invitation ends (its status makes it single-use), so a second
 * click gets "already accepted" rather than "not valid"; a resend replaces it.
 */
export async function findInvitationByToken(db: Db, serverSecret: string, token: string) {
  const [inv] = await db<(Invitation & { organizationName: string })[]>`
    select ${db.unsafe(
      COLUMNS.split(', ')
        .map((c) => `i.${c}`)
        .join(', '),
    )}, o.name as organization_name
    from invitations i join organizations o on o.id = i.organization_id
    where i.token_hash = ${hashSecret(token, serverSecret)}`;
  if (!inv) throw new DomainError('not_found', invitationRefusal('unknown'));
  if (inv.status !== 'pending') throw new DomainError('conflict', invitationRefusal(inv.status));
  if (inv.expiresAt.getTime() <= Date.now()) throw new DomainError('conflict', invitationRefusal('past_expiry'));
  const account = await getAccount(db, inv.accountId);
  return { invitation: inv, account: account! };
}

/**
 * Accepts an invitation with its token. Following the emailed single-use link proves control of
 * the address, so it is enough also for a person who already has an account (e.g. a member of
 * another organization); only someone signed in as a different person is refused. The person's
 * name completes a new account; the join (joinOrganization, the one place every acceptance goes
 * through) activates the membership with the roles chosen at invite time, joins the invited
 * local groups and records `invite.accepted`.
 */
export async function acceptInvitation(
  db: Db,
  serverSecret: string,
  token: string,
  names: { givenName?: string; familyName?: string },
  signedInAccountId: string | null,
): Promise<{ invitation: Invitation & { organizationName: string }; membership: Membership }> {
  return inTransaction(db, async (tx) => {
    const { invitation, account } = await findInvitationByToken(tx, serverSecret, token);
    if (signedInAccountId !== null && signedInAccountId !== account.id)
      throw new DomainError('forbidden', SIGNED_IN_AS_SOMEONE_ELSE);
    // A second use of the same link waits here and then finds the invitation no longer pending.
    const [locked] = await tx<{ status: Invitation['status'] }[]>`
      select status from invitations where organization_id = ${invitation.organizationId} and id = ${invitation.id} for update`;
    if (locked!.status !== 'pending') throw new DomainError('conflict', invitationRefusal(locked!.status));
    if (names.givenName || names.familyName) {
      await tx`update accounts set given_name = coalesce(given_name, ${names.givenName ?? null}),
                 family_name = coalesce(family_name, ${names.familyName ?? null}), updated_at = now() where id = ${account.id}`;
    }
    const actor: Actor = { type: 'account', id: account.id, name: account.email, channel: 'admin' };
    const joined = await joinOrganization(
      tx,
      { organizationId: invitation.organizationId, accountId: account.id, source: 'invite' },
      actor,
    );
    // The membership was already active (the invitation was left pending): nothing to accept.
    if (joined.invitation?.id !== invitation.id)
      throw conflict(`${account.email} is already a member of ${invitation.organizationName}`);
    return { invitation, membership: joined.membership };
  });
}
