import type { AppContext } from '../context.ts';
import type { Sender } from '../sync/deliver.ts';
import type { Mailer } from './mailer.ts';

const SEND_TIMEOUT_MS = 10 * 60_000;

/**
 * Tells an owner that a verified domain lost its DNS record (`domain.verification_lost`): people
 * from it no longer join automatically until the record is published and the domain verified again.
 */
export function domainLostEmailSender(ctx: AppContext, mailer: Mailer): Sender {
  return {
    timeoutMs: SEND_TIMEOUT_MS,
    async send(delivery, event) {
      const domain = String(event.payload.domain);
      const [org] = await ctx.sql<
        { name: string }[]
      >`select name from organizations where id = ${delivery.organizationId}`;
      const link = `${ctx.config.publicUrl}/console/identity`;
      await mailer({
        to: delivery.target,
        subject: `${domain} is no longer verified for ${org?.name ?? 'your organization'}`,
        text:
          `The daily check no longer finds the DNS TXT record that proves ${org?.name ?? 'your organization'} ` +
          `controls ${domain}, so ${domain} is no longer verified: people with an address there stop joining ` +
          `automatically through single sign-on.\n\nIf this is expected, nothing needs doing. Otherwise publish ` +
          `the record again and verify the domain: ${link}\n`,
        link,
      });
    },
  };
}
