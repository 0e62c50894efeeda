import type { Db } from '../storage/database.ts';
import { firstRow } from '../storage/database.ts';
import { getMembership, type Membership } from './memberships.ts';
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
  input: { organizationId: string; accountId: string; via: string; ttlSeconds?: number },
): Promise<{ session: Session; secret: string }> {
  const secret = generateSecret('session');
  const ttl = input.ttlSeconds ?? DEFAULT_SESSION_TTL_SECONDS;
  const [rows] = await Promise.all([
    db<Session[]>`
      insert into sessions (organization_id, account_id, secret_hash, via, expires_at)
      values (${input.organizationId}, ${input.accountId}, ${hashSecret(secret, serverSecret)}, ${input.via},
              now() + make_interval(secs => ${ttl}))
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
  const [session] = await db<(Session & { lastSeenAt: Date })[]>`
    select organization_id, id, account_id, via, created_at, expires_at, last_seen_at from sessions
    where secret_hash = ${hashSecret(secret, serverSecret)} and revoked_at is null and expires_at > now()`;
  if (!session) return null;
  const membership = await getMembership(db, session.organizationId, session.accountId);
  if (membership?.status !== 'active') return null;
  if (Date.now() - session.lastSeenAt.getTime() > 60_000) {
    await db`update sessions set last_seen_at = now() where organization_id = ${session.organizationId} and id = ${session.id}`;
    await db`update memberships set last_active_at = now()
             where organization_id = ${session.organizationId} and account_id = ${session.accountId}`;
  }
  return { session, membership };
}

/** Logout. Unknown or already-ended sessions are fine. */
export async function endSession(db: Db, serverSecret: string, secret: string): Promise<void> {
  await db`update sessions set revoked_at = now() where secret_hash = ${hashSecret(secret, serverSecret)} and revoked_at is null`;
}
