import { asyncHandler } from '../http/async-handler.ts';
import express, { Router, type Response } from 'express';
import type { AppContext } from '../context.ts';
import { DomainError } from '../core/errors.ts';
import { acceptInvitation, findInvitationByToken, SIGNED_IN_AS_SOMEONE_ELSE } from '../core/invitations.ts';
import { effectivePermissions } from '../core/memberships.ts';
import { findOrganization } from '../core/organizations.ts';
import type { Permission } from '../core/permissions.ts';
import { auditBreakGlassUse, nonSsoSignIn } from '../core/required-sso.ts';
import { createSession, resolveSession } from '../core/sessions.ts';
import { recordAttempt } from '../saml/attempts.ts';
import { listConnections } from '../saml/connections.ts';
import { startLogin } from '../saml/login.ts';
import { crossSiteReason } from '../http/csrf.ts';
import { readSessionCookie, setSessionCookie } from '../http/session-cookie.ts';

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function page(res: Response, status: number, title: string, body: string): void {
  res
    .status(status)
    .set({
      'cache-control': 'no-store',
      // Not no-referrer: that makes the form's POST carry `Origin: null`; same-origin sends the
      // Origin (and the token-bearing Referer) to orgsync only.
      'referrer-policy': 'same-origin',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    })
    .type('html')
    .send(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title><style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}label{display:block;margin:.75rem 0}input{display:block;width:100%;padding:.4rem}button{margin-top:1rem;padding:.5rem 1rem}</style>
</head><body><h1>${escape(title)}</h1>${body}</body></html>`);
}

/**
 * The link onward: to the console when the person may see it, else to the service's address (a
 * refused visitor is not known to hold any permission).
 */
function onwardLink(ctx: AppContext, permissions: readonly Permission[] = []): string {
  const { publicUrl } = ctx.config;
  return permissions.includes('members:view')
    ? `<p><a href="${escape(`${publicUrl}/console/`)}">Continue to the console</a></p>`
    : `<p><a href="${escape(`${publicUrl}/`)}">Continue to ${escape(publicUrl)}</a></p>`;
}

/** A page saying why the link cannot be used, with the way on. */
function refusalPage(ctx: AppContext, res: Response, status: number, title: string, message: string): void {
  page(res, status, title, `<p>${escape(message)}</p>${onwardLink(ctx)}`);
}

function refusal(ctx: AppContext, res: Response, error: unknown): void {
  if (!(error instanceof DomainError)) throw error;
  // A policy refusal (one organization per person) leaves the invitation pending: not gone.
  const status = error.code === 'not_found' ? 404 : error.code === 'forbidden' ? 403 : error.details.policy ? 409 : 410;
  refusalPage(
    ctx,
    res,
    status,
    status === 403 ? 'Signed in as someone else' : 'Invitation not available',
    error.message,
  );
}

/**
 * The pages an invited person opens from the email (no API key: the single-use token proves the
 * email address, also for a person who already has an account). A new person gives their name;
 * accepting joins and signs them in. Someone signed in as a different person is refused.
 */
export function invitationPages(ctx: AppContext): Router {
  const router = Router();
  const signedInAccount = async (req: express.Request) => {
    const cookie = readSessionCookie(req);
    return cookie
      ? ((await resolveSession(ctx.sql, ctx.config.serverSecret, cookie))?.session.accountId ?? null)
      : null;
  };
  router.use(express.urlencoded({ extended: false, limit: '8kb' }));

  /** Starts the SSO login for an invitation; with several enabled connections the person picks one. */
  const continueWithSso = async (
    req: express.Request,
    res: Response,
    invitation: { id: string; organizationId: string; organizationName: string },
    token: string,
  ) => {
    const organization = (await findOrganization(ctx.sql, invitation.organizationId))!;
    const chosen = typeof req.query.connection === 'string' ? req.query.connection : undefined;
    const enabled = (await listConnections(ctx.sql, organization.id)).filter((c) => c.enabled);
    if (chosen === undefined && enabled.length > 1) {
      const links = enabled
        .map(
          (c) =>
            `<li><a href="accept?token=${encodeURIComponent(token)}&amp;connection=${encodeURIComponent(c.id)}">${escape(c.name)}</a></li>`,
        )
        .join('');
      page(
        res,
        200,
        `Join ${invitation.organizationName}`,
        `<p>Sign in with single sign-on to accept the invitation:</p><ul>${links}</ul>`,
      );
      return;
    }
    await startLogin(ctx, res, organization, { connection: chosen, returnTo: '/console', invitationId: invitation.id });
  };

  router.get(
    '/accept',
    asyncHandler(async (req, res, next) => {
      try {
        const token = typeof req.query.token === 'string' ? req.query.token : '';
        const { invitation, account } = await findInvitationByToken(ctx.sql, ctx.config.serverSecret, token);
        const signedIn = await signedInAccount(req);
        if (signedIn !== null && signedIn !== account.id) {
          refusalPage(ctx, res, 403, 'Signed in as someone else', SIGNED_IN_AS_SOMEONE_ELSE);
          return;
        }
        // Required SSO: the link leads to the IdP, carrying the invitation (the ACS accepts it).
        if ((await nonSsoSignIn(ctx.sql, invitation.organizationId, account.id)) === 'sso_required') {
          await continueWithSso(req, res, invitation, token);
          return;
        }
        const needsName = !account.givenName || !account.familyName;
        page(
          res,
          200,
          `Join ${invitation.organizationName}`,
          `<p>You were invited as <strong>${escape(account.email)}</strong>.</p>
<form method="post" action="accept"><input type="hidden" name="token" value="${escape(token)}">
${
  needsName
    ? `<label>First name<input name="givenName" autocomplete="given-name" required maxlength="200" value="${escape(account.givenName ?? '')}"></label>
<label>Last name<input name="familyName" autocomplete="family-name" required maxlength="200" value="${escape(account.familyName ?? '')}"></label>`
    : ''
}
<button type="submit">Accept and join</button></form>`,
        );
      } catch (error) {
        try {
          refusal(ctx, res, error);
        } catch (other) {
          next(other);
        }
      }
    }),
  );

  router.post(
    '/accept',
    asyncHandler(async (req, res, next) => {
      try {
        // Against login CSRF: another site posting its own invitation's token signs the browser in.
        const crossSite = crossSiteReason(req, ctx.config.publicUrl);
        if (crossSite) {
          refusalPage(ctx, res, 403, 'Request refused', `This form was not sent from orgsync: ${crossSite}.`);
          return;
        }
        const body = req.body as Record<string, string | undefined>;
        const token = String(body.token ?? '');
        const { invitation: found, account } = await findInvitationByToken(ctx.sql, ctx.config.serverSecret, token);
        const rule = await nonSsoSignIn(ctx.sql, found.organizationId, account.id);
        if (rule === 'sso_required') {
          const message = `${found.organizationName} requires single sign-on: accept the invitation through it`;
          await recordAttempt(ctx.sql, found.organizationId, {
            outcome: 'refused',
            reason: 'sso_required',
            message: `${message} (a sign-in without SSO from the invitation link was refused)`,
            email: account.email,
            accountId: account.id,
          });
          page(
            res,
            403,
            'Single sign-on required',
            `<p>${escape(message)}.</p><p><a href="accept?token=${encodeURIComponent(token)}">Continue with single sign-on</a></p>`,
          );
          return;
        }
        const names = {
          givenName: body.givenName?.trim().slice(0, 200) || undefined,
          familyName: body.familyName?.trim().slice(0, 200) || undefined,
        };
        const { invitation, membership } = await acceptInvitation(
          ctx.sql,
          ctx.config.serverSecret,
          token,
          names,
          await signedInAccount(req),
        );
        const breakGlass = rule === 'break_glass';
        const { session, secret } = await createSession(ctx.sql, ctx.config.serverSecret, {
          organizationId: membership.organizationId,
          accountId: membership.accountId,
          via: 'invite',
          breakGlassAudited: breakGlass,
        });
        if (breakGlass)
          await auditBreakGlassUse(ctx.sql, membership.organizationId, membership.accountId, invitation.email, {
            via: 'invite',
            sessionId: session.id,
            use: 'sign_in',
          });
        setSessionCookie(res, secret, session.expiresAt, ctx.config.publicUrl.startsWith('https:'));
        const permissions = await effectivePermissions(ctx.sql, membership);
        page(
          res,
          200,
          'Welcome',
          `<p>You joined <strong>${escape(invitation.organizationName)}</strong> as ${escape(invitation.email)}. You are signed in.</p>
${onwardLink(ctx, permissions)}`,
        );
      } catch (error) {
        try {
          refusal(ctx, res, error);
        } catch (other) {
          next(other);
        }
      }
    }),
  );
  return router;
}
