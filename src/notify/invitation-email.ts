import type { AppContext } from '../context.ts';
import { findOrganization } from '../core/organizations.ts';
import { openSealedSecret } from '../core/secrets.ts';
import type { Mailer } from './mailer.ts';

/** nodemailer's own socket timeout (10 minutes) bounds a send; a delivery's lease outlasts it. */
export const INVITATION_SEND_TIMEOUT_MS = 10 * 60_000;

/** What the email needs of a delivery and its `invite.created` event (the reconciler's rows fit). */
export interface InvitationDelivery {
  organizationId: string;
  /** The invited address. */
  target: string;
}
export interface InvitationEvent {
  type: string;
  payload: Record<string, unknown>;
}

/**
 * Sends the email of an `invite.created` event: the accept link carries the invitation token,
 * which waited in the outbox sealed (the reconciler wipes it once the delivery is recorded).
 */
export function invitationEmail(ctx: AppContext, mailer: Mailer) {
  return async (delivery: InvitationDelivery, event: InvitationEvent): Promise<void> => {
    const sealed = (event.payload.sealed as { token?: string } | undefined)?.token;
    if (!sealed) throw new Error('the invitation token is no longer in the event');
    const token = openSealedSecret(sealed, ctx.config.serverSecret);
    const org = await findOrganization(ctx.sql, delivery.organizationId);
    const link = `${ctx.config.publicUrl}/invitations/accept?token=${encodeURIComponent(token)}`;
    const inviter = typeof event.payload.invitedBy === 'string' ? event.payload.invitedBy : 'An administrator';
    await mailer({
      to: delivery.target,
      subject: `You are invited to join ${org?.name ?? 'an organization'}`,
      text: `${inviter} invited you to join ${org?.name ?? 'an organization'}.\n\nAccept the invitation: ${link}\n\nThe link works once and expires; if you did not expect it, ignore this email.\n`,
      link,
    });
  };
}
