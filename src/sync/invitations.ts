import type { Sql } from '../storage/database.ts';
import { systemActor } from '../core/actor.ts';
import {
  completeInvitation,
  expireInvitations as expire,
  type PendingInvitation,
} from '../core/invitation-lifecycle.ts';

const actor = systemActor('sync', 'reconciler');
const BATCH = 500;

/**
 * Pending invitations past their expiry become 'expired' and their 'invited' membership ends
 * (the same function a join uses when it meets one not swept yet, so both audit alike).
 * Works in batches, each its own transaction: a crash loses at most the batch in flight, which
 * the next run picks up again.
 */
export async function expireInvitations(sql: Sql): Promise<number> {
  let total = 0;
  for (;;) {
    const expired = await sql.begin(async (tx) => {
      const rows = await tx<Omit<PendingInvitation, 'groupIds'>[]>`
        select organization_id, id, account_id, email from invitations
        where status = 'pending' and expires_at <= now()
        order by expires_at limit ${BATCH} for update skip locked`;
      await expire(tx, rows, actor);
      return rows.length;
    });
    total += expired;
    if (expired < BATCH) return total;
  }
}

/**
 * Repair pass: a pending invitation whose person is already an active member (they arrived
 * by a path that did not accept it) is accepted as any acceptance is: its local groups are
 * joined and `invite.accepted` is recorded.
 */
export async function acceptArrivedInvitations(sql: Sql): Promise<number> {
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
