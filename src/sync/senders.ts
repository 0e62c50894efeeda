import type { AppContext } from '../context.ts';
import { openSealedSecret } from '../core/secrets.ts';
import { domainLostEmailSender } from '../notify/domain-email.ts';
import { invitationEmailSender } from '../notify/invitation-email.ts';
import { createMailer } from '../notify/mailer.ts';
import type { Sender, Senders } from './deliver.ts';
import { publicEventBody } from './outbox.ts';
import { postWebhook } from './webhooks.ts';

/** Signs and posts a webhook delivery to its endpoint (read in a statement of its own, no transaction). */
export function webhookSender(ctx: AppContext): Sender {
  const { webhookTimeoutMs, webhookAllowPrivateNetworks } = ctx.config.reconciler;
  return {
    timeoutMs: webhookTimeoutMs,
    async send(delivery, event) {
      const [endpoint] = await ctx.sql<{ url: string; secretSealed: string; enabled: boolean }[]>`
        select url, secret_sealed, enabled from webhook_endpoints
        where organization_id = ${delivery.organizationId} and id = ${delivery.target}::uuid`;
      if (!endpoint) throw new Error('the webhook endpoint was deleted');
      if (!endpoint.enabled) throw new Error('the webhook endpoint is disabled');
      await postWebhook(
        endpoint.url,
        openSealedSecret(endpoint.secretSealed, ctx.config.serverSecret),
        event.id,
        publicEventBody(event),
        { timeoutMs: webhookTimeoutMs, allowPrivate: webhookAllowPrivateNetworks },
      );
    },
  };
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
  const mailer = createMailer({ smtpUrl: ctx.config.smtpUrl, from: ctx.config.mailFrom, log: ctx.log });
  return {
    webhook: webhookSender(ctx),
    email: byEventType({
      'invite.created': invitationEmailSender(ctx, mailer),
      'domain.verification_lost': domainLostEmailSender(ctx, mailer),
    }),
  };
}
