import type { AppContext } from '../context.ts';
import { openSealedSecret } from '../core/secrets.ts';
import { domainLostEmail, DOMAIN_EMAIL_SEND_TIMEOUT_MS } from '../notify/domain-email.ts';
import { webhookTarget } from '../core/webhook-endpoints.ts';
import { INVITATION_SEND_TIMEOUT_MS, invitationEmail } from '../notify/invitation-email.ts';
import { createMailer, type Mailer } from '../notify/mailer.ts';
import type { Sender, Senders } from './deliver.ts';
import { forgetSealedPayload, publicEventBody } from './outbox.ts';
import { postWebhook } from './webhooks.ts';

/** Signs and posts a webhook delivery to its endpoint (read in a statement of its own, no transaction). */
export function webhookSender(ctx: AppContext): Sender {
  const { webhookTimeoutMs, webhookAllowPrivateNetworks } = ctx.config.reconciler;
  return {
    timeoutMs: webhookTimeoutMs,
    async send(delivery, event) {
      const endpoint = await webhookTarget(ctx.sql, delivery.organizationId, delivery.target);
      if (!endpoint) throw new Error('the webhook endpoint was deleted');
      if (!endpoint.enabled) throw new Error('the webhook endpoint is disabled');
      const responseStatus = await postWebhook(
        endpoint.url,
        openSealedSecret(endpoint.secretSealed, ctx.config.serverSecret),
        event.id,
        publicEventBody(event),
        { timeoutMs: webhookTimeoutMs, allowPrivate: webhookAllowPrivateNetworks },
      );
      return { responseStatus };
    },
  };
}

/** Sends the invitation email; once delivered, the invitation token that waited sealed in the event is wiped. */
export function invitationEmailSender(ctx: AppContext, mailer: Mailer): Sender {
  return {
    timeoutMs: INVITATION_SEND_TIMEOUT_MS,
    send: invitationEmail(ctx, mailer),
    delivered: (tx, _delivery, event) => forgetSealedPayload(tx, event),
  };
}

/** Tells the owners that a verified domain lost its DNS record. */
function domainLostEmailSender(ctx: AppContext, mailer: Mailer): Sender {
  return { timeoutMs: DOMAIN_EMAIL_SEND_TIMEOUT_MS, send: domainLostEmail(ctx, mailer) };
}

/** One email delivery lane, several kinds of email: each event type has its own sender. */
function byEventType(senders: Record<string, Sender>): Sender {
  const pick = (type: string) => {
    const sender = senders[type];
    if (!sender) throw new Error(`no email for ${type} events`);
    return sender;
  };
  return {
    timeoutMs: Math.max(...Object.values(senders).map((s) => s.timeoutMs)),
    send: (delivery, event) => pick(event.type).send(delivery, event),
    delivered: async (tx, delivery, event) => pick(event.type).delivered?.(tx, delivery, event),
  };
}

export function defaultSenders(ctx: AppContext): Senders {
  // One SMTP transport for every kind of email.
  const mailer = createMailer({ smtpUrl: ctx.config.smtpUrl, from: ctx.config.mailFrom, log: ctx.log });
  return {
    webhook: webhookSender(ctx),
    email: byEventType({
      'invite.created': invitationEmailSender(ctx, mailer),
      'domain.verification_lost': domainLostEmailSender(ctx, mailer),
    }),
  };
}
