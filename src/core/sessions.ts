import type { Db } from '../storage/database.ts';
import { firstRow, inTransaction } from '../storage/database.ts';
import { getMembership, type Membership } from './memberships.ts';
import { SSO_SESSION_VIA, auditBreakGlassUse } from './required-sso.ts';
import { generateSecret, hashSecret } from './secrets.ts';

export interface Session {
  organizationId: string;
  id: string;
  accountId: string;
  via: string;
  createdAt: Date;
  expiresAt: Date;
}

export const DEFAULT_SESSION_TTL_SECONDS = 8 * 3600;

/** Starts a session for a member; returns the cookie value (shown once, stored hashed). */
export async function createSession(
  db: Db,
  serverSecret: string,
  input: { organizationId: string; accountId: string; via: string; ttlSeconds?: number; breakGlassAudited?: boolean },
): Promise<{ session: Session; secret: string }> {
  const secret = generateSecret('session');
  const ttl = input.ttlSeconds ?? DEFAULT_SESSION_TTL_SECONDS;
  const [rows] = await Promise.all([
    db<Session[]>`
      insert into sessions (organization_id, account_id, secret_hash, via, expires_at, break_glass_audited_at)
      values (${input.organizationId}, ${input.accountId}, ${hashSecret(secret, serverSecret)}, ${input.via},
              now() + make_interval(secs => ${ttl}), ${input.breakGlassAudited ? new Date() : null})
      returning organization_id, id, account_id, via, created_at, expires_at`,
    // Signing in (SSO, an accepted invitation) is activity, as using a session is (resolveSession).
    db`update memberships set last_active_at = now()
       where organization_id = ${input.organizationId} and account_id = ${input.accountId}`,
  ]);
  return { session: firstRow(rows), secret };
}

/**
 * The session and its membership for a cookie value, or null. A session lives only while its
 * membership is active: suspending or removing a member ends their sessions at once.
 */
export async function resolveSession(
  db: Db,
  serverSecret: string,
  secret: string,
): Promise<{ session: Session; membership: Membership } | null> {
  const [row] = await db<(Session & SsoRule & { lastSeenAt: Date })[]>`
    select s.organization_id, s.id, s.account_id, s.via, s.created_at, s.expires_at, s.last_seen_at,
           o.require_sso and s.via <> ${SSO_SESSION_VIA} as sso_missing,
           s.account_id = any(o.sso_break_glass_account_ids) as break_glass,
           s.break_glass_audited_at is null as break_glass_unaudited
    from sessions s join organizations o on o.id = s.organization_id
    where s.secret_hash = ${hashSecret(secret, serverSecret)} and s.revoked_at is null and s.expires_at > now()`;
  if (!row) return null;
  const { ssoMissing, breakGlass, breakGlassUnaudited, ...session } = row;
  // SSO is required: a session made otherwise works only for a break-glass owner (the switch
  // ended the others; this also covers one started while the setting changed).
  if (ssoMissing && !breakGlass) return null;
  const membership = await getMembership(db, session.organizationId, session.accountId);
  if (membership?.status !== 'active') return null;
  if (ssoMissing && breakGlassUnaudited) await auditFirstBreakGlassUse(db, session);
  if (Date.now() - session.lastSeenAt.getTime() > 60_000) {
    await db`update sessions set last_seen_at = now() where organization_id = ${session.organizationId} and id = ${session.id}`;
    await db`update memberships set last_active_at = now()
             where organization_id = ${session.organizationId} and account_id = ${session.accountId}`;
  }
  return { session, membership };
}

interface SsoRule {
  ssoMissing: boolean;
  breakGlass: boolean;
  breakGlassUnaudited: boolean;
}

/** A break-glass owner's non-SSO session, used for the first time while SSO is required: audited once. */
async function auditFirstBreakGlassUse(db: Db, session: Session & { lastSeenAt: Date }): Promise<void> {
  await inTransaction(db, async (tx) => {
    const [marked] = await tx<{ email: string }[]>`
      update sessions s set break_glass_audited_at = now() from accounts a
      where a.id = s.account_id and s.organization_id = ${session.organizationId} and s.id = ${session.id}
        and s.break_glass_audited_at is null
      returning a.email`;
    if (marked)
      await auditBreakGlassUse(tx, session.organizationId, session.accountId, marked.email, {
        via: session.via,
        sessionId: session.id,
        use: 'session',
      });
  });
}

/** Logout. Unknown or already-ended sessions are fine. */
export async function endSession(db: Db, serverSecret: string, secret: string): Promise<void> {
  await db`update sessions set revoked_at = now() where secret_hash = ${hashSecret(secret, serverSecret)} and revoked_at is null`;
}
