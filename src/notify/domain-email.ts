import type { AppContext } from '../context.ts';
import { findOrganization } from '../core/organizations.ts';
import type { InvitationDelivery as EmailDelivery, InvitationEvent as EmailEvent } from './invitation-email.ts';
import type { Mailer } from './mailer.ts';

export const DOMAIN_EMAIL_SEND_TIMEOUT_MS = 10 * 60_000;

/**
 * Tells an owner that a verified domain lost its DNS record (`domain.verification_lost`): people
 * from it no longer join automatically until the record is published and the domain verified again.
 */
export function domainLostEmail(ctx: AppContext, mailer: Mailer) {
  return async (delivery: EmailDelivery, event: EmailEvent): Promise<void> => {
    const domain = String(event.payload.domain);
    const name = (await findOrganization(ctx.sql, delivery.organizationId))?.name ?? 'your organization';
    const link = `${ctx.config.publicUrl}/console/identity`;
    await mailer({
      to: delivery.target,
      subject: `${domain} is no longer verified for ${name}`,
      text:
        `The daily check no longer finds the DNS TXT record that proves ${name} controls ${domain}, so ` +
        `${domain} is no longer verified: people with an address there stop joining automatically ` +
        `through single sign-on.\n\nIf this is expected, nothing needs doing. Otherwise publish the ` +
        `record again and verify the domain: ${link}\n`,
      link,
    });
  };
}
