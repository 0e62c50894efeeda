import type { Sql } from '../storage/database.ts';
import { systemActor } from '../core/actor.ts';
import { recordAudit } from '../core/audit.ts';
import { emitEvent } from '../core/events.ts';

const actor = systemActor('sync', 'reconciler');
const BATCH = 500;

/**
 * Pending invitations past their expiry become 'expired' and their 'invited' membership ends.
 * Works in batches, each its own transaction: a crash loses at most the batch in flight, which
 * the next run picks up again.
 */
export async function expireInvitations(sql: Sql): Promise<number> {
  let total = 0;
  for (;;) {
    const expired = await sql.begin(async (tx) => {
      const rows = await tx<{ organizationId: string; id: string; accountId: string; email: string }[]>`
        update invitations set status = 'expired', updated_at = now()
        where (organization_id, id) in (
          select organization_id, id from invitations
          where status = 'pending' and expires_at <= now()
          order by expires_at limit ${BATCH} for update skip locked)
        returning organization_id, id, account_id, email`;
      for (const inv of rows) {
        await tx`
          update memberships set status = 'removed', updated_at = now()
          where organization_id = ${inv.organizationId} and account_id = ${inv.accountId} and status = 'invited'`;
        const target = { type: 'invitation', id: inv.id };
        await recordAudit(tx, inv.organizationId, actor, 'invite.expired', target, { email: inv.email, accountId: inv.accountId });
        await emitEvent(tx, inv.organizationId, 'invite.expired', { invitationId: inv.id, email: inv.email, accountId: inv.accountId }, actor);
      }
      return rows.length;
    });
    total += expired;
    if (expired < BATCH) return total;
  }
}

/**
 * Repair pass: a pending invitation whose person is already an active member (they arrived
 * through SCIM or SSO by a path that did not accept it) is marked accepted.
 */
export async function acceptArrivedInvitations(sql: Sql): Promise<number> {
  return sql.begin(async (tx) => {
    const rows = await tx<{ organizationId: string; id: string; accountId: string; email: string }[]>`
      update invitations i set status = 'accepted', accepted_at = now(), updated_at = now()
      from memberships m
      where i.status = 'pending' and m.organization_id = i.organization_id and m.account_id = i.account_id
        and m.status = 'active'
      returning i.organization_id, i.id, i.account_id, i.email`;
    for (const inv of rows) {
      const target = { type: 'invitation', id: inv.id };
      await recordAudit(tx, inv.organizationId, actor, 'invite.accepted', target, { email: inv.email, accountId: inv.accountId, via: 'reconciler' });
      await emitEvent(tx, inv.organizationId, 'invite.accepted', { invitationId: inv.id, email: inv.email, accountId: inv.accountId }, actor);
    }
    return rows.length;
  });
}
