import type { Response } from 'express';
import type { AppContext } from '../context.ts';
import type { Organization } from '../core/organizations.ts';
import { bindRequestToBrowser } from './browser-binding.ts';
import { getConnection, listConnections, type SamlConnection } from './connections.ts';
import { rememberRequest } from './one-time.ts';
import { sendSsoErrorPage } from './pages.ts';
import { allowedReturnTo } from './return-to.ts';
import { authnRequest, serviceProvider } from './service-provider.ts';

/**
 * SP-initiated login: an AuthnRequest to the connection's IdP, remembered with where to return
 * and, when it starts from an invitation link, the invitation (the ACS accepts it only for the
 * invited email). Answers an error page when the organization has no usable connection.
 */
export async function startLogin(
  ctx: AppContext,
  res: Response,
  organization: Organization,
  options: { connection?: unknown; returnTo: string; invitationId?: string },
): Promise<void> {
  const connection = await chooseConnection(ctx, organization, options.connection);
  if (typeof connection === 'string') {
    sendSsoErrorPage(res, 400, { title: 'Single sign-on is not available', message: connection });
    return;
  }
  const returnTo = allowedReturnTo(options.returnTo, ctx.config.publicUrl, connection.allowedReturnUrls);
  if (!returnTo) {
    sendSsoErrorPage(res, 400, {
      title: 'Sign-in link not allowed',
      message: 'The page to return to after signing in is not one this organization allows.',
      reason: 'relay_state_not_allowed',
    });
    return;
  }
  const entity = await serviceProvider(ctx, organization);
  const request = authnRequest(entity, connection, '');
  // The answer will be accepted only from this browser (login CSRF): see browser-binding.ts.
  const browserBindingHash = bindRequestToBrowser(res, request.id, entity.urls.acsUrl, ctx.config.serverSecret);
  await rememberRequest(ctx.sql, {
    organizationId: organization.id,
    id: request.id,
    connectionId: connection.id,
    returnTo,
    browserBindingHash,
    invitationId: options.invitationId ?? null,
  });
  res.setHeader('cache-control', 'no-store');
  res.redirect(302, request.url);
}

/** The connection a login uses: the one named, or the organization's only enabled one. */
export async function chooseConnection(
  ctx: AppContext,
  organization: Organization,
  requested: unknown,
): Promise<SamlConnection | string> {
  if (typeof requested === 'string' && requested !== '') {
    const connection = await getConnection(ctx.sql, organization.id, requested);
    if (!connection) return 'No such single sign-on connection.';
    return connection.enabled ? connection : 'This single sign-on connection is disabled.';
  }
  const enabled = (await listConnections(ctx.sql, organization.id)).filter((c) => c.enabled);
  if (enabled.length === 0) return `${organization.name} has no single sign-on set up.`;
  if (enabled.length > 1)
    return 'This organization has several single sign-on connections: the link must name one (?connection=…).';
  return enabled[0]!;
}
