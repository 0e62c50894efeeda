import { asyncHandler } from '../http/async-handler.ts';
import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import type { AppContext } from '../context.ts';
import { getAccount } from '../core/accounts.ts';
import { systemActor } from '../core/actor.ts';
import { effectivePermissions, effectiveRoles } from '../core/memberships.ts';
import { findOrganization, type Organization } from '../core/organizations.ts';
import { DEFAULT_SESSION_TTL_SECONDS, createSession, endSession, resolveSession } from '../core/sessions.ts';
import { crossSiteReason } from '../http/csrf.ts';
import { clearSessionCookie, readSessionCookie, setSessionCookie } from '../http/session-cookie.ts';
import { closingStatement, inTransaction, type Tx } from '../storage/database.ts';
import { countAttempt, insertAttempt, type AttemptInput } from './attempts.ts';
import { acsShared, type AcsShared } from './acs-shared.ts';
import { clearRequestBinding, isBoundToThisBrowser, presentedBindings } from './browser-binding.ts';
import type { SamlConnection } from './connections.ts';
import { identityOf } from './identity.ts';
import { startLogin } from './login.ts';
import { consumeRequest, markAssertionUsed } from './one-time.ts';
import { sendSsoErrorPage } from './pages.ts';
import { prepareSamlSchema } from './schema.ts';
import { prepareSignatureVerifier } from './signature-verifier.ts';
import { SamlRefusal, refuse } from './refusal.ts';
import { allowedReturnTo } from './return-to.ts';
import { serviceProvider, spUrls } from './service-provider.ts';
import { administratorsOf, readPerson, signIn, type SignedIn } from './sign-in.ts';
import { decodeSamlResponse, readResponse, verifyResponse } from './validate-response.ts';

/**
 * Where the ACS is (under the app's root). The app's own body limit leaves it to the ACS, whose
 * parser has the same limit, so an oversized message is a SAML refusal like any other: logged, in
 * the attempt log, and explained on the error page.
 */
export const ACS_PATH = /^\/saml\/[^/]+\/acs\/?$/i;

/**
 * The browser-facing SAML SP under /saml: per organization its metadata, SP-initiated login and
 * the ACS; and for the product, who is signed in (`GET /saml/me`) and logout.
 */
export function samlRouter(ctx: AppContext, bodyLimit: number): Router {
  // Compiled once and started once, now, rather than on the first sign-in.
  prepareSamlSchema();
  prepareSignatureVerifier();
  const router = Router();
  const secureCookie = ctx.config.publicUrl.startsWith('https://');
  const acs = acsShared(ctx.sql);

  router.get(
    '/me',
    asyncHandler(async (req, res, next) => {
      try {
        const cookie = readSessionCookie(req);
        const resolved = cookie ? await resolveSession(ctx.sql, ctx.config.serverSecret, cookie) : null;
        if (!resolved) {
          res.status(401).json({ error: 'unauthenticated', message: 'nobody is signed in' });
          return;
        }
        const { session, membership } = resolved;
        const [account, organization] = await Promise.all([
          getAccount(ctx.sql, session.accountId),
          findOrganization(ctx.sql, session.organizationId),
        ]);
        res.setHeader('cache-control', 'no-store');
        res.json({
          account: {
            id: account!.id,
            email: account!.email,
            givenName: account!.givenName,
            familyName: account!.familyName,
          },
          organization: { id: organization!.id, slug: organization!.slug, name: organization!.name },
          roles: effectiveRoles(membership),
          permissions: await effectivePermissions(ctx.sql, membership),
          session: { via: session.via, expiresAt: session.expiresAt },
        });
      } catch (error) {
        next(error);
      }
    }),
  );

  router.post(
    '/logout',
    asyncHandler(async (req, res, next) => {
      try {
        const crossSite = crossSiteReason(req, ctx.config.publicUrl);
        if (crossSite) {
          res.status(403).json({ error: 'cross_site_request', message: `request refused: ${crossSite}` });
          return;
        }
        const cookie = readSessionCookie(req);
        if (cookie) await endSession(ctx.sql, ctx.config.serverSecret, cookie);
        clearSessionCookie(res, secureCookie);
        res.status(204).end();
      } catch (error) {
        next(error);
      }
    }),
  );

  router.get(
    '/:org/metadata',
    asyncHandler(async (req, res, next) => {
      try {
        const organization = await findOrganization(ctx.sql, String(req.params.org));
        if (!organization) return notFoundPage(res);
        const entity = await serviceProvider(ctx, organization);
        res.type('application/samlmetadata+xml').send(entity.sp.getMetadata());
      } catch (error) {
        next(error);
      }
    }),
  );

  router.get(
    '/:org/login',
    asyncHandler(async (req, res, next) => {
      try {
        const organization = await findOrganization(ctx.sql, String(req.params.org));
        if (!organization) return notFoundPage(res);
        const returnTo = typeof req.query.returnTo === 'string' ? req.query.returnTo : '/';
        await startLogin(ctx, res, organization, { connection: req.query.connection, returnTo });
      } catch (error) {
        next(error);
      }
    }),
  );

  router.post(
    '/:org/acs',
    acsForm(bodyLimit),
    asyncHandler(async (req, res, next) => {
      try {
        const unreadable = res.locals.formRefusal as SamlRefusal | undefined;
        // Read before the lookup, which then finds the organization and the connection the
        // message names together; what is wrong with the message is told only once the
        // organization is known to exist, as before.
        const message = unreadable ? null : readPostedMessage(req.body);
        const issuer = message && 'claimedIssuer' in message ? message.claimedIssuer : null;
        const { organization, connection } = await acs.find(String(req.params.org), issuer);
        if (unreadable) {
          // The body may be left unread: the connection cannot be reused.
          res.setHeader('connection', 'close');
          if (organization) return await refused(ctx, acs, organization, res, unreadable, {});
          ctx.log.warn(
            { organization: String(req.params.org), reason: unreadable.reason, message: unreadable.message },
            'SAML sign-in refused',
          );
          return sendSsoErrorPage(res, refusalStatus(unreadable), {
            title: 'Single sign-on failed',
            message: unreadable.message,
            reason: unreadable.reason,
          });
        }
        if (!organization) return notFoundPage(res);
        await assertionConsumer(ctx, acs, organization, connection, message!, req, res, secureCookie);
      } catch (error) {
        next(error);
      }
    }),
  );

  return router;
}

/**
 * The ACS's form parser. A body over the limit or one the parser cannot read becomes a refusal
 * the ACS reports, instead of the app's JSON error. A declared length over the limit is refused
 * without reading the body (the parser would read it all off first); a chunked body is cut off
 * by the parser at the limit.
 */
function acsForm(limit: number): RequestHandler {
  const parse = express.urlencoded({ extended: false, limit });
  const tooLarge = () => new SamlRefusal('oversized', `the message exceeds the request body limit of ${limit} bytes`);
  return (req, res, next) => {
    if (Number(req.get('content-length') ?? 0) > limit) {
      res.locals.formRefusal = tooLarge();
      return next();
    }
    parse(req, res, (error?: unknown) => {
      if (!error) return next();
      const { type, status } = error as { type?: string; status?: number };
      if (type === 'entity.too.large') res.locals.formRefusal = tooLarge();
      else if (typeof status === 'number' && status < 500 && type !== 'request.aborted') {
        res.locals.formRefusal = new SamlRefusal(
          'malformed',
          `the form cannot be read: ${String((error as Error).message).slice(0, 200)}`,
        );
      } else return next(error);
      next();
    });
  };
}

/** The posted SAMLResponse decoded and parsed, with the issuer it claims; or why it cannot be. */
type PostedMessage = { xml: string; doc: Document; claimedIssuer: string | null } | { unreadable: unknown };

function readPostedMessage(body: unknown): PostedMessage {
  try {
    const xml = decodeSamlResponse(formField(body, 'SAMLResponse'));
    return { xml, ...readResponse(xml) };
  } catch (error) {
    return { unreadable: error };
  }
}

/** The ACS: verify, apply the join rules, start a session; every outcome goes to the attempt log. */
async function assertionConsumer(
  ctx: AppContext,
  acs: AcsShared,
  organization: Organization,
  connection: SamlConnection | null,
  message: PostedMessage,
  req: Request,
  res: Response,
  secureCookie: boolean,
): Promise<void> {
  const seen: { connection?: SamlConnection; idpEntityId?: string; nameId?: string; email?: string } = {};
  // The browser's cookie for the request answered: dropped once it has matched, whatever the
  // outcome then (signing in again starts a new request).
  const binding: BrowserBinding = { presented: [], used: false };
  const clearUsedBinding = () => {
    if (binding.used) clearRequestBinding(res, binding.requestId!, binding.acsUrl!);
  };
  try {
    if ('unreadable' in message) throw message.unreadable;
    const { xml, doc, claimedIssuer } = message;
    seen.idpEntityId = claimedIssuer ?? undefined;
    if (!connection)
      refuse(
        'unknown_issuer',
        `no SAML connection of this organization trusts the issuer ${JSON.stringify(claimedIssuer)}`,
      );
    seen.connection = connection;
    if (!connection.enabled) refuse('connection_disabled', 'this SAML connection is disabled');

    const urls = spUrls(ctx.config.publicUrl, organization);
    const assertion = await verifyResponse(xml, doc, connection, {
      urls,
      entity: () => serviceProvider(ctx, organization),
    });
    seen.nameId = assertion.nameId;
    if (assertion.inResponseTo) {
      Object.assign(binding, {
        requestId: assertion.inResponseTo,
        acsUrl: urls.acsUrl,
        presented: presentedBindings(req, assertion.inResponseTo),
      });
    }
    // Consumed for good before anything else can refuse it: an assertion refused because its
    // request expired or its person may not join cannot be replayed once an invitation exists.
    if (!(await markAssertionUsed(ctx.sql, organization.id, assertion.assertionId, assertion.usableUntil))) {
      refuse('replayed_assertion', `the assertion ${assertion.assertionId} was already used`);
    }
    const identity = identityOf(assertion, connection.attributeMapping);
    seen.email = identity.email;
    const success = (signedIn: SignedIn): AttemptInput => ({
      outcome: 'success',
      connectionId: connection.id,
      idpEntityId: connection.idpEntityId,
      nameId: identity.nameId,
      email: identity.email,
      accountId: signedIn.accountId,
      reason: signedIn.path,
    });

    // One transaction: a refusal from here on leaves no trace but the attempt log (and the used assertion id).
    const { signedIn, session, returnTo } = await inTransaction(ctx.sql, async (tx) => {
      // The person is read while the pending request is consumed: one round trip for both.
      const person = readPerson(tx, organization.id, identity.email);
      const { returnTo, invitationId } = await returnToOf(
        ctx,
        tx,
        organization,
        connection,
        assertion.inResponseTo,
        binding,
        formField(req.body, 'RelayState'),
      );
      const signedIn = await signIn(tx, organization, connection, identity, invitationId, person);
      // The session and the attempt row close the transaction, after signIn's audit entry: the
      // four writes and COMMIT in one round trip. The attempt row is written only if the
      // sign-in is committed, as when it followed the transaction.
      const session = closingStatement(
        tx,
        createSession(tx, ctx.config.serverSecret, {
          organizationId: organization.id,
          accountId: signedIn.accountId,
          via: 'saml',
          ttlSeconds: sessionTtlSeconds(assertion.sessionEndsAt),
        }),
      );
      void closingStatement(tx, insertAttempt(tx, organization.id, success(signedIn)));
      return { signedIn, session, returnTo };
    });
    countAttempt(success(signedIn));
    const { secret, session: started } = await session;
    setSessionCookie(res, secret, started.expiresAt, secureCookie);
    clearUsedBinding();
    res.setHeader('cache-control', 'no-store');
    res.redirect(303, returnTo);
  } catch (error) {
    if (!(error instanceof SamlRefusal)) throw error;
    const signed = error.signedAssertion;
    if (signed && signed.usableUntil.getTime() > Date.now())
      await markAssertionUsed(ctx.sql, organization.id, signed.assertionId, signed.usableUntil);
    clearUsedBinding();
    await refused(ctx, acs, organization, res, error, seen);
  }
}

/** The browser's binding secrets for the request a response answers, and whether they matched it. */
interface BrowserBinding {
  requestId?: string;
  acsUrl?: string;
  presented: string[];
  used: boolean;
}

/** 413 for a message too large to read, else 403. */
function refusalStatus(refusal: SamlRefusal): number {
  return refusal.reason === 'oversized' ? 413 : 403;
}

async function refused(
  ctx: AppContext,
  acs: AcsShared,
  organization: Organization,
  res: Response,
  refusal: SamlRefusal,
  seen: { connection?: SamlConnection; idpEntityId?: string; nameId?: string; email?: string },
): Promise<void> {
  const details = {
    reason: refusal.reason,
    message: refusal.message,
    connectionId: seen.connection?.id ?? null,
    idpEntityId: seen.connection?.idpEntityId ?? seen.idpEntityId ?? null,
    nameId: refusal.context.nameId ?? seen.nameId ?? null,
    email: refusal.context.email ?? seen.email ?? null,
  };
  // The person (NameID, email; the message may name them too) goes to the attempt log and the
  // audit, which the organization's admins read; the process log carries no personal data.
  const { reason, connectionId, idpEntityId } = details;
  ctx.log.warn({ organizationId: organization.id, reason, connectionId, idpEntityId }, 'SAML sign-in refused');
  await acs.logRefusal({
    organizationId: organization.id,
    attempt: {
      outcome: 'refused',
      reason: refusal.reason,
      message: refusal.message,
      connectionId: details.connectionId,
      idpEntityId: details.idpEntityId,
      nameId: details.nameId,
      email: details.email,
    },
    audit: {
      organizationId: organization.id,
      actor: systemActor('sso', details.idpEntityId ?? 'unknown IdP'),
      action: 'sso.refused',
      target: null,
      details,
    },
  });
  const joinRefused = refusal.reason === 'not_allowed_to_join';
  sendSsoErrorPage(res, refusalStatus(refusal), {
    title: joinRefused ? `You are not a member of ${organization.name}` : 'Single sign-on failed',
    message: refusal.message,
    reason: refusal.reason,
    contacts:
      joinRefused || refusal.reason.startsWith('membership_')
        ? await administratorsOf(ctx.sql, organization.id)
        : undefined,
  });
}

/**
 * Where the browser goes after signing in. An answer to our AuthnRequest consumes it, if this
 * browser started it, and uses the returnTo given at login; an IdP-initiated one (when allowed)
 * uses an allowed RelayState.
 */
async function returnToOf(
  ctx: AppContext,
  tx: Tx,
  organization: Organization,
  connection: SamlConnection,
  inResponseTo: string | null,
  binding: BrowserBinding,
  relayState: unknown,
): Promise<{ returnTo: string; invitationId: string | null }> {
  if (inResponseTo) {
    const request = await consumeRequest(tx, organization.id, connection.id, inResponseTo);
    if (!request)
      refuse(
        'in_response_to_mismatch',
        'the response answers no pending sign-in request of this connection (unknown, expired or already used)',
      );
    if (!isBoundToThisBrowser(request.browserBindingHash, binding.presented, ctx.config.serverSecret)) {
      refuse(
        'request_not_from_this_browser',
        `the response answers a sign-in that was not started in this browser (${binding.presented.length === 0 ? 'it holds no sign-in cookie for that request' : 'its sign-in cookie for that request does not match'}); start the sign-in again here`,
      );
    }
    binding.used = true;
    return { returnTo: request.returnTo, invitationId: request.invitationId };
  }
  if (!connection.allowIdpInitiated)
    refuse('unsolicited_response', 'IdP-initiated sign-in is turned off for this connection');
  const wanted = typeof relayState === 'string' && relayState !== '' ? relayState : '/';
  const returnTo =
    allowedReturnTo(wanted, ctx.config.publicUrl, connection.allowedReturnUrls) ??
    refuse('relay_state_not_allowed', 'the RelayState is not an allowed return URL');
  return { returnTo, invitationId: null };
}

/** Our usual session length, shortened when the IdP says its own session ends sooner. */
function sessionTtlSeconds(idpSessionEndsAt: Date | null): number {
  if (!idpSessionEndsAt) return DEFAULT_SESSION_TTL_SECONDS;
  return Math.max(
    60,
    Math.min(DEFAULT_SESSION_TTL_SECONDS, Math.floor((idpSessionEndsAt.getTime() - Date.now()) / 1000)),
  );
}

function notFoundPage(res: Response): void {
  sendSsoErrorPage(res, 404, { title: 'Unknown organization', message: 'There is no organization at this address.' });
}

/** A field of the urlencoded form the IdP posted (absent when the body is not a form). */
function formField(body: unknown, name: string): unknown {
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[name] : undefined;
}
