import type { Db, Tx } from '../storage/database.ts';
import type { Actor } from './actor.ts';
import { recordAudit } from './audit.ts';
import { conflict, invalid } from './errors.ts';
import { isUuid } from './ids.ts';
import { OWNER_ROLE } from './roles.ts';

/**
 * Required SSO: an organization whose members sign in only through its SAML connection. Sessions
 * made by SSO have this `via`; any other session of such an organization is refused, unless the
 * person is one of the named break-glass owners. Admin API keys are not sessions: unaffected.
 */
export const SSO_SESSION_VIA = 'saml';

/** At most this many break-glass owners: a short list kept for emergencies. */
export const MAX_BREAK_GLASS_OWNERS = 10;

/** How a person may sign in to the organization without SSO. */
export type NonSsoSignIn = 'allowed' | 'break_glass' | 'sso_required';

export async function nonSsoSignIn(db: Db, organizationId: string, accountId: string): Promise<NonSsoSignIn> {
  const [org] = await db<{ requireSso: boolean; breakGlass: boolean }[]>`
    select require_sso, ${accountId}::uuid = any(sso_break_glass_account_ids) as break_glass
    from organizations where id = ${organizationId}`;
  if (!org?.requireSso) return 'allowed';
  return org.breakGlass ? 'break_glass' : 'sso_required';
}

/** Whether SSO is required, with the organization row locked (against a concurrent change of the setting). */
export async function lockRequiredSso(tx: Tx, organizationId: string): Promise<boolean> {
  const [org] = await tx<{ requireSso: boolean }[]>`
    select require_sso from organizations where id = ${organizationId} for update`;
  return org?.requireSso ?? false;
}

/**
 * Checks a change of the setting before it is written (the organization row is locked): turning
 * it on needs an enabled SAML connection (the SAML adapter answers that), and the break-glass
 * list may name only owners of the organization.
 */
export async function checkRequiredSsoChange(
  tx: Tx,
  organizationId: string,
  change: { requireSso?: boolean; ssoBreakGlassAccountIds?: string[] },
  hasEnabledSsoConnection: (tx: Tx) => Promise<boolean>,
): Promise<void> {
  if (change.requireSso === true && !(await hasEnabledSsoConnection(tx)))
    throw conflict('SSO can be required only when the organization has an enabled SAML connection', {
      setting: 'requireSso',
    });
  const ids = change.ssoBreakGlassAccountIds;
  if (ids === undefined) return;
  if (ids.length > MAX_BREAK_GLASS_OWNERS)
    throw invalid(`at most ${MAX_BREAK_GLASS_OWNERS} break-glass owners`, { setting: 'ssoBreakGlassAccountIds' });
  const malformed = ids.filter((id) => !isUuid(id));
  const owners = await tx<{ accountId: string }[]>`
    select account_id from memberships
    where organization_id = ${organizationId} and account_id = any(${ids.filter(isUuid)}::uuid[])
      and status in ('active', 'invited')
      and (${OWNER_ROLE} = any(roles) or ${OWNER_ROLE} = any(mapped_roles))`;
  const notOwners = [...malformed, ...ids.filter((id) => isUuid(id) && !owners.some((o) => o.accountId === id))];
  if (notOwners.length)
    throw invalid(`break-glass owners must be owners of the organization: ${notOwners.join(', ')}`, {
      setting: 'ssoBreakGlassAccountIds',
      accountIds: notOwners,
    });
}

/**
 * Ends the organization's sessions not made through SSO, but the break-glass owners'. Run in the
 * transaction that requires SSO (or shortens the break-glass list); audited with the count.
 */
export async function endNonSsoSessions(tx: Tx, organizationId: string, actor: Actor): Promise<number> {
  const ended = await tx<{ accountId: string }[]>`
    update sessions s set revoked_at = now()
    from organizations o
    where o.id = s.organization_id and s.organization_id = ${organizationId}
      and s.revoked_at is null and s.expires_at > now() and s.via <> ${SSO_SESSION_VIA}
      and not (s.account_id = any(o.sso_break_glass_account_ids))
    returning s.account_id`;
  if (ended.length)
    await recordAudit(
      tx,
      organizationId,
      actor,
      'sso.sessions_ended',
      { type: 'organization', id: organizationId },
      { reason: 'sso_required', sessions: ended.length, accountIds: [...new Set(ended.map((s) => s.accountId))] },
    );
  return ended.length;
}

/** Every use of the break-glass path is audited: a sign-in without SSO, or a session's first use once SSO is required. */
export async function auditBreakGlassUse(
  db: Db,
  organizationId: string,
  accountId: string,
  actorName: string,
  details: { via: string; sessionId?: string; use: 'sign_in' | 'session' },
): Promise<void> {
  await recordAudit(
    db,
    organizationId,
    { type: 'account', id: accountId, name: actorName, channel: 'admin' },
    'sso.break_glass_used',
    { type: 'account', id: accountId },
    details,
  );
}
