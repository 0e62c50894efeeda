import type { Db, Sql, Tx } from '../storage/database.ts';
import type { Actor } from './actor.ts';
import { recordAudit } from './audit.ts';
import { serializeBatchProvisioning } from './batch-provisioning-lock.ts';
import { emitEvent } from './events.ts';
import { changeGroupMembers } from './groups.ts';

/**
 * How a pending invitation ends, whichever path ends it: one function per outcome, so the email
 * link, SCIM, SSO and the reconciler change, audit and announce it alike.
 */
export interface PendingInvitation {
  organizationId: string;
  id: string;
  accountId: string;
  email: string;
  groupIds: string[];
}

/**
 * The person's pending invitation in the organization, locked; null when there is none.
 */
export async function lockPendingInvitation(
  tx: Tx,
  organizationId: string,
  accountId: string,
): Promise<(PendingInvitation & { live: boolean }) | null> {
  const [row] = await tx<(PendingInvitation & { live: boolean })[]>`
    select organization_id, id, account_id, email, group_ids, expires_at > now() as live from invitations
    where organization_id = ${organizationId} and account_id = ${accountId} and status = 'pending'
    for update`;
  return row ?? null;
}

/**
 * Marks a pending invitation accepted (its membership is already active or being activated in
 * the same transaction), joins the local groups chosen when inviting (those that still exist)
 * and records `invite.accepted`. `via` says how the person arrived (invite, scim, sso, reconciler).
 */
export async function completeInvitation(
  tx: Tx,
  invitation: PendingInvitation,
  actor: Actor,
  via: string,
): Promise<{ groupIds: string[] }> {
  const { organizationId, id, accountId, email } = invitation;
  await tx`
    update invitations set status = 'accepted', accepted_at = now(), updated_at = now()
    where organization_id = ${organizationId} and id = ${id} and status = 'pending'`;
  const groups = invitation.groupIds.length
    ? await tx<{ id: string }[]>`
        select id from groups where organization_id = ${organizationId} and id = any(${invitation.groupIds}::uuid[]) order by id`
    : [];
  for (const g of groups) await changeGroupMembers(tx, organizationId, g.id, { add: [accountId] }, actor);
  const details = { email, accountId, groupIds: groups.map((g) => g.id), via };
  await recordAudit(tx, organizationId, actor, 'invite.accepted', { type: 'invitation', id }, details);
  await emitEvent(tx, organizationId, 'invite.accepted', { invitationId: id, ...details }, actor);
  return { groupIds: details.groupIds };
}

/**
 * Ends pending invitations the caller has locked (past their expiry): the invitation becomes
 * 'expired', its 'invited' membership ends, and `invite.expired` is audited and announced.
 */
export async function markInvitationsExpired(
  tx: Tx,
  invitations: readonly Omit<PendingInvitation, 'groupIds'>[],
  actor: Actor,
): Promise<void> {
  if (invitations.length === 0) return;
  const orgs = invitations.map((i) => i.organizationId);
  await tx`
    update invitations set status = 'expired', updated_at = now()
    where status = 'pending' and (organization_id, id) in (
      select * from unnest(${orgs}::uuid[], ${invitations.map((i) => i.id)}::uuid[]))`;
  await tx`
    update memberships set status = 'removed', updated_at = now()
    where status = 'invited' and (organization_id, account_id) in (
      select * from unnest(${orgs}::uuid[], ${invitations.map((i) => i.accountId)}::uuid[]))`;
  for (const inv of invitations) {
    const details = { email: inv.email, accountId: inv.accountId };
    await recordAudit(tx, inv.organizationId, actor, 'invite.expired', { type: 'invitation', id: inv.id }, details);
    await emitEvent(tx, inv.organizationId, 'invite.expired', { invitationId: inv.id, ...details }, actor);
  }
}

const SWEEP_BATCH = 500;

/**
 * The sweep: every pending invitation past its expiry is ended by `markInvitationsExpired` (the
 * function a join uses when it meets one not swept yet, so both audit alike). Works
 * organization by organization, in batches, each its own transaction: a crash loses at most the
 * batch in flight, which the next run picks up again.
 */
export async function expireInvitations(sql: Sql, actor: Actor): Promise<number> {
  const organizations = await sql<{ organizationId: string }[]>`
    select distinct organization_id from invitations where status = 'pending' and expires_at <= now()`;
  let total = 0;
  for (const { organizationId } of organizations) total += await expireInvitationsOf(sql, organizationId, actor);
  return total;
}

/**
 * A batch moves memberships out of counter rows of many shards in no order, as an import batch,
 * a /Bulk window or a sweep on another instance (a run outlasting its tick) may at the same time:
 * it takes the organization's batch lock first, so they run one at a time. One organization per
 * transaction, so a transaction holds one such lock and never waits for a second.
 */
async function expireInvitationsOf(sql: Sql, organizationId: string, actor: Actor): Promise<number> {
  let total = 0;
  for (;;) {
    const expired = await sql.begin(async (tx) => {
      await serializeBatchProvisioning(tx, organizationId);
      // The membership is locked with its invitation, skipped too when a join holds it: a join
      // locks the membership and then the invitation, and the sweep must not wait for the one
      // while holding the other. (A pending invitation always has its membership row.)
      const rows = await tx<Omit<PendingInvitation, 'groupIds'>[]>`
        select i.organization_id, i.id, i.account_id, i.email
        from invitations i join memberships m on m.organization_id = i.organization_id and m.account_id = i.account_id
        where i.organization_id = ${organizationId} and i.status = 'pending' and i.expires_at <= now()
        order by i.expires_at limit ${SWEEP_BATCH} for update of i, m skip locked`;
      await markInvitationsExpired(tx, rows, actor);
      return rows.length;
    });
    total += expired;
    if (expired < SWEEP_BATCH) return total;
  }
}

/**
 * Repair pass: a pending invitation whose person is already an active member (they arrived
 * by a path that did not accept it) is accepted as any acceptance is: its local groups are
 * joined and `invite.accepted` is recorded.
 */
export async function acceptArrivedInvitations(sql: Sql, actor: Actor): Promise<number> {
  return sql.begin(async (tx) => {
    const rows = await tx<PendingInvitation[]>`
      select i.organization_id, i.id, i.account_id, i.email, i.group_ids
      from invitations i join memberships m on m.organization_id = i.organization_id and m.account_id = i.account_id
      where i.status = 'pending' and m.status = 'active'
      for update of i skip locked`;
    for (const inv of rows) await completeInvitation(tx, inv, actor, 'reconciler');
    return rows.length;
  });
}

/** Whether the person has a pending invitation to the organization that has not expired. */
export async function hasLiveInvitation(db: Db, organizationId: string, accountId: string): Promise<boolean> {
  const [row] = await db`
    select 1 from invitations
    where organization_id = ${organizationId} and account_id = ${accountId} and status = 'pending' and expires_at > now()`;
  return Boolean(row);
}

/** The email an invitation of the organization was sent to; null when there is no such invitation. */
export async function invitationEmail(db: Db, organizationId: string, id: string): Promise<string | null> {
  const [row] = await db<{ email: string }[]>`
    select email from invitations where organization_id = ${organizationId} and id = ${id}`;
  return row?.email ?? null;
}
