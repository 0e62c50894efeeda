import nodemailer from 'nodemailer';
import type { Logger } from '../log.ts';

export interface Email {
  to: string;
  subject: string;
  /** The plain-text part; every email has one. */
  text: string;
  /** An HTML alternative to the text part. */
  html?: string;
  /** A link the message is about; logged (at debug) instead of sent when no SMTP server is configured. */
  link?: string;
}

export type Mailer = (email: Email) => Promise<void>;

/**
 * Sends over SMTP_URL with nodemailer. Without one, nothing is sent: a warning says so, and for
 * local use the recipient and the link (an invitation's carries its token) are logged at debug
 * level only (LOG_LEVEL=debug), so a default log holds neither.
 */
export function createMailer(options: { smtpUrl?: string; from: string; log: Logger }): Mailer {
  if (!options.smtpUrl) {
    return (email) => {
      options.log.warn(
        { subject: email.subject },
        'no SMTP_URL configured: email not sent (LOG_LEVEL=debug logs its recipient and link)',
      );
      options.log.debug({ to: email.to, link: email.link }, 'unsent email');
      return Promise.resolve();
    };
  }
  const transport = nodemailer.createTransport(options.smtpUrl);
  return async (email) => {
    await transport.sendMail({
      from: options.from,
      to: email.to,
      subject: email.subject,
      text: email.text,
      ...(email.html ? { html: email.html } : {}),
    });
  };
}
