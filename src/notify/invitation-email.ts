import type { AppContext } from '../context.ts';
import { findOrganization } from '../core/organizations.ts';
import { listRoles } from '../core/roles.ts';
import { openSealedSecret } from '../core/secrets.ts';
import { escapeHtml } from './html.ts';
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

/** What an invitation email says, taken from the event and the organization as they are now. */
export interface InvitationContent {
  organizationName: string;
  /** The member who invited, as "Name (email)" or the email; null when an API key or the system did. */
  inviter: string | null;
  roleNames: string[];
  expiresAt: Date | null;
  link: string;
}

const UTC_DATE = new Intl.DateTimeFormat('en-GB', { timeZone: 'UTC', dateStyle: 'full', timeStyle: 'short' });

/** e.g. "Wednesday 9 December 2026 at 11:52 UTC": absolute, so it reads the same in any time zone. */
export function formatExpiry(date: Date): string {
  return `${UTC_DATE.format(date)} UTC`;
}

function inviterText(payload: Record<string, unknown>): string | null {
  // Only the `inviter` a member leaves; `invitedBy` may be an API key's name, which is not for the invitee.
  const inviter = payload.inviter as { name?: unknown; email?: unknown } | null | undefined;
  if (!inviter || typeof inviter.email !== 'string') return null;
  return typeof inviter.name === 'string' && inviter.name ? `${inviter.name} (${inviter.email})` : inviter.email;
}

export function renderInvitationEmail(c: InvitationContent): { subject: string; text: string; html: string } {
  const who = c.inviter ?? c.organizationName;
  const intro = c.inviter
    ? `${c.inviter} invited you to join ${c.organizationName} on orgsync.`
    : `${c.organizationName} invited you to join its organization on orgsync.`;
  const roles = c.roleNames.length ? c.roleNames.join(', ') : null;
  const expiry = c.expiresAt ? formatExpiry(c.expiresAt) : null;
  const text = [
    intro,
    '',
    ...(roles ? [`Your role${c.roleNames.length > 1 ? 's' : ''}: ${roles}`] : []),
    ...(expiry ? [`The invitation expires on ${expiry}.`] : []),
    '',
    `Accept the invitation: ${c.link}`,
    '',
    'The link works once. If you did not expect this invitation, ignore this email.',
    '',
  ].join('\n');
  const e = escapeHtml;
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${e(`Join ${c.organizationName}`)}</title></head>
<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:0 auto;padding:1.5rem;color:#1f2328">
<h1 style="font-size:1.3rem">Join ${e(c.organizationName)}</h1>
<p>${c.inviter ? `<strong>${e(c.inviter)}</strong> invited you to join <strong>${e(c.organizationName)}</strong> on orgsync.` : `<strong>${e(c.organizationName)}</strong> invited you to join its organization on orgsync.`}</p>
<ul>
${roles ? `<li>Your role${c.roleNames.length > 1 ? 's' : ''}: <strong>${e(roles)}</strong></li>` : ''}
${expiry ? `<li>Expires on <strong>${e(expiry)}</strong></li>` : ''}
</ul>
<p><a href="${e(c.link)}" style="display:inline-block;padding:.6rem 1.1rem;background:#0b57d0;color:#fff;border-radius:6px;text-decoration:none">Accept the invitation</a></p>
<p style="font-size:.9rem;color:#59636e">Or paste this link into your browser: ${e(c.link)}<br>The link works once. If you did not expect this invitation from ${e(who)}, ignore this email.</p>
</body></html>`;
  const subject = c.inviter
    ? `${c.inviter} invited you to join ${c.organizationName}`
    : `You are invited to join ${c.organizationName}`;
  // A name with a line break must not reach the header as one.
  return { subject: subject.replace(/[\r\n]+/g, ' '), text, html };
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
    const roleKeys = Array.isArray(event.payload.roles) ? event.payload.roles.map(String) : [];
    const names = new Map((await listRoles(ctx.sql, delivery.organizationId)).map((r) => [r.key, r.name]));
    const expiresAt = typeof event.payload.expiresAt === 'string' ? new Date(event.payload.expiresAt) : null;
    const email = renderInvitationEmail({
      organizationName: org?.name ?? 'an organization',
      inviter: inviterText(event.payload),
      roleNames: roleKeys.map((k) => names.get(k) ?? k),
      expiresAt: expiresAt && !Number.isNaN(expiresAt.getTime()) ? expiresAt : null,
      link,
    });
    await mailer({ to: delivery.target, ...email, link });
  };
}
