import type { AppContext } from '../context.ts';
import { openSealedSecret } from '../core/secrets.ts';
import { webhookTarget } from '../core/webhook-endpoints.ts';
import { invitationEmailSender } from '../notify/invitation-email.ts';
import { createMailer } from '../notify/mailer.ts';
import type { Sender, Senders } from './deliver.ts';
import { forgetSealedPayload, publicEventBody } from './outbox.ts';
import { postWebhook } from './webhooks.ts';

/** Signs and posts a webhook delivery to its endpoint. */
export function webhookSender(ctx: AppContext): Sender {
  return async (delivery, event, db) => {
    const endpoint = await webhookTarget(db, delivery.organizationId, delivery.target);
    if (!endpoint) throw new Error('the webhook endpoint was deleted');
    if (!endpoint.enabled) throw new Error('the webhook endpoint is disabled');
    await postWebhook(
      endpoint.url,
      openSealedSecret(endpoint.secretSealed, ctx.config.serverSecret),
      event.id,
      publicEventBody(event),
      {
        timeoutMs: ctx.config.reconciler.webhookTimeoutMs,
        allowPrivate: ctx.config.reconciler.webhookAllowPrivateNetworks,
      },
    );
  };
}

export function defaultSenders(ctx: AppContext): Senders {
  const mailer = createMailer({ smtpUrl: ctx.config.smtpUrl, from: ctx.config.mailFrom, log: ctx.log });
  const sendInvitation = invitationEmailSender(ctx, mailer);
  return {
    webhook: webhookSender(ctx),
    // Once sent, the invitation token that waited sealed in the event is wiped from it.
    email: async (delivery, event, db) => {
      await sendInvitation(delivery, event, db);
      await forgetSealedPayload(db, event);
    },
  };
}
