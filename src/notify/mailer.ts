import nodemailer from 'nodemailer';
import type { Logger } from '../log.ts';

export interface Email {
  to: string;
  subject: string;
  text: string;
  /** A link the message is about; logged instead of sent when no SMTP server is configured. */
  link?: string;
}

export type Mailer = (email: Email) => Promise<void>;

/** Sends over SMTP_URL with nodemailer; without one, logs the message (and its link) for local use. */
export function createMailer(options: { smtpUrl?: string; from: string; log: Logger }): Mailer {
  if (!options.smtpUrl) {
    return (email) => {
      options.log.warn(
        { to: email.to, subject: email.subject, link: email.link },
        'no SMTP_URL configured: email not sent, link logged',
      );
      return Promise.resolve();
    };
  }
  const transport = nodemailer.createTransport(options.smtpUrl);
  return async (email) => {
    await transport.sendMail({ from: options.from, to: email.to, subject: email.subject, text: email.text });
  };
}
