import type { AppContext } from '../context.ts';
import { openSealedSecret } from '../core/secrets.ts';
import type { Sender } from '../sync/deliver.ts';
import type { Mailer } from './mailer.ts';

/** nodemailer's own socket timeout (10 minutes) bounds a send; a delivery's lease outlasts it. */
const SEND_TIMEOUT_MS = 10 * 60_000;

/**
 * Delivers the email of an `invite.created` event: the accept link carries the invitation token,
 * which waited in the outbox sealed. Once sent, the sealed token is wiped from the event (with the
 * delivery recorded as delivered).
 */
export function invitationEmailSender(ctx: AppContext, mailer: Mailer): Sender {
  return {
    timeoutMs: SEND_TIMEOUT_MS,
    async send(delivery, event) {
      const sealed = (event.payload.sealed as { token?: string } | undefined)?.token;
      if (!sealed) throw new Error('the invitation token is no longer in the event');
      const token = openSealedSecret(sealed, ctx.config.serverSecret);
      const [org] = await ctx.sql<
        { name: string }[]
      >`select name from organizations where id = ${delivery.organizationId}`;
      const link = `${ctx.config.publicUrl}/invitations/accept?token=${encodeURIComponent(token)}`;
      const inviter = typeof event.payload.invitedBy === 'string' ? event.payload.invitedBy : 'An administrator';
      await mailer({
        to: delivery.target,
        subject: `You are invited to join ${org?.name ?? 'an organization'}`,
        text: `${inviter} invited you to join ${org?.name ?? 'an organization'}.\n\nAccept the invitation: ${link}\n\nThe link works once and expires; if you did not expect it, ignore this email.\n`,
        link,
      });
    },
    async delivered(tx, _delivery, event) {
      await tx`update outbox set payload = payload - 'sealed' where organization_id = ${event.organizationId} and id = ${event.id}`;
    },
  };
}
