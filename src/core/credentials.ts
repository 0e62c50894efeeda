import { inTransaction, type Db } from '../storage/database.ts';
import type { Notifications } from '../storage/notifications.ts';
import { singleFlight } from '../storage/single-flight.ts';
import type { Actor } from './actor.ts';
import { recordAudit } from './audit.ts';
import { invalid, notFound } from './errors.ts';
import { isUuid } from './ids.ts';
import { assertHoldsPermissionsOf, assertMayConfigureIdentity } from './authority.ts';
import { assertRolesExist } from './roles.ts';
import { generateSecret, hashSecret, secretHint } from './secrets.ts';

/** SCIM bearer tokens ('scim') and admin API keys ('admin') share one table and one life cycle. */
export type CredentialKind = 'scim' | 'admin';

export interface Credential {
  id: string;
  organizationId: string;
  kind: CredentialKind;
  name: string;
  secretHint: string;
  roles: string[];
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
  /** Who issued it (an actor's type and name); null for credentials older than that record. */
  createdByType: Actor['type'] | null;
  createdByName: string | null;
}

export interface IssuedCredential extends Credential {
  /** The secret itself; shown once, never stored. */
  secret: string;
}

const COLUMNS =
  'id, organization_id, kind, name, secret_hint, roles, created_at, expires_at, revoked_at, last_used_at, created_by_type, created_by_name';

export async function issueCredential(
  db: Db,
  serverSecret: string,
  input: { organizationId: string; kind: CredentialKind; name: string; expiresAt?: Date | null; roles?: string[] },
  actor: Actor,
): Promise<IssuedCredential> {
  const name = input.name.trim();
  if (name.length < 1 || name.length > 100) throw invalid('name must be 1 to 100 characters');
  if (input.expiresAt && input.expiresAt.getTime() <= Date.now()) throw invalid('expiry must be in the future');
  const roles = input.kind === 'admin' ? (input.roles ?? ['admin']) : [];
  if (input.kind === 'admin' && roles.length === 0) throw invalid('an admin API key needs at least one role');
  await assertRolesExist(db, input.organizationId, roles);
  // A credential acts with power of its own: only a caller holding all of it may issue one.
  if (input.kind === 'scim') await assertMayConfigureIdentity(db, input.organizationId, actor, 'issue a SCIM token');
  else
    await assertHoldsPermissionsOf(db, input.organizationId, actor, [
      { roles, reason: 'issue an admin API key with the role(s)' },
    ]);
  const secret = generateSecret(input.kind);
  const [row] = await db<Credential[]>`
    insert into credentials (organization_id, kind, name, secret_hash, secret_hint, roles, expires_at, created_by_type, created_by_name)
    values (${input.organizationId}, ${input.kind}, ${name}, ${hashSecret(secret, serverSecret)}, ${secretHint(secret)},
            ${roles}::text[], ${input.expiresAt ?? null}, ${actor.type}, ${actor.name})
    returning ${db.unsafe(COLUMNS)}`;
  await recordAudit(
    db,
    input.organizationId,
    actor,
    `${input.kind}_credential.issued`,
    { type: 'credential', id: row!.id },
    {
      name,
      expiresAt: input.expiresAt ?? null,
    },
  );
  return { ...row!, secret };
}

/**
 * SCIM tokens verified in the last second, by secret hash. IdPs send bursts of requests with one
 * token; this saves a query on each. Revoking or rotating forgets the token here at once and, by
 * a notification on CREDENTIAL_CHANGES, in every other instance within milliseconds; the short
 * lifetime bounds what a lost notification (or a verification racing the revocation) can leave.
 */
const SCIM_TOKEN_CACHE_MS = 1_000;
const recentlyVerified = new Map<string, { credential: Credential; until: number }>();

/** Carries the id of a credential revoked or rotated, for every instance to forget it. */
export const CREDENTIAL_CHANGES = 'orgsync_credential_changes';

/** Tells every instance (followCredentialChanges) to forget the credential, once `db`'s transaction commits. */
async function announceChange(db: Db, id: string): Promise<void> {
  await db`select pg_notify(${CREDENTIAL_CHANGES}, ${id})`;
}

/** Keeps this process's cache in step with revocations and rotations made by other instances. */
export async function followCredentialChanges(notifications: Notifications): Promise<void> {
  await notifications.listen(CREDENTIAL_CHANGES, forgetVerified, () => recentlyVerified.clear());
}

/** The live credential a secret belongs to, or null when it is unknown, revoked or expired. */
export async function verifyCredential(
  db: Db,
  serverSecret: string,
  kind: CredentialKind,
  secret: string,
): Promise<Credential | null> {
  const hash = hashSecret(secret, serverSecret);
  if (kind !== 'scim') return readCredential(db, kind, hash);
  const cached = recentlyVerified.get(hash);
  if (
    cached &&
    cached.until > Date.now() &&
    (!cached.credential.expiresAt || cached.credential.expiresAt.getTime() > Date.now())
  ) {
    return cached.credential;
  }
  // A burst with one token (an IdP's sync, or this process starting under one) finds no cached
  // entry in every request it has in flight: they share one read instead of making one each.
  return readingScimToken(hash, () => readCredential(db, kind, hash));
}

const readingScimToken = singleFlight<Credential | null>();

async function readCredential(db: Db, kind: CredentialKind, hash: string): Promise<Credential | null> {
  const [row] = await db<Credential[]>`
    select ${db.unsafe(COLUMNS)} from credentials
    where secret_hash = ${hash} and kind = ${kind}
      and revoked_at is null and (expires_at is null or expires_at > now())`;
  if (!row) {
    recentlyVerified.delete(hash);
    return null;
  }
  // Written at most once a minute per credential, so busy tokens do not turn every read into a write.
  if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > 60_000) {
    await db`update credentials set last_used_at = now() where id = ${row.id}`;
  }
  if (kind === 'scim') {
    if (recentlyVerified.size > 10_000) recentlyVerified.clear();
    recentlyVerified.set(hash, { credential: row, until: Date.now() + SCIM_TOKEN_CACHE_MS });
  }
  return row;
}

function forgetVerified(id: string): void {
  for (const [hash, entry] of recentlyVerified) if (entry.credential.id === id) recentlyVerified.delete(hash);
}

export async function listCredentials(db: Db, organizationId: string, kind: CredentialKind): Promise<Credential[]> {
  return db<Credential[]>`
    select ${db.unsafe(COLUMNS)} from credentials
    where organization_id = ${organizationId} and kind = ${kind} order by created_at, id`;
}

export async function revokeCredential(
  db: Db,
  organizationId: string,
  id: string,
  actor: Actor,
  kind?: CredentialKind,
): Promise<Credential> {
  if (!isUuid(id)) throw notFound('credential', { id });
  const [row] = await db<Credential[]>`
    update credentials set revoked_at = coalesce(revoked_at, now())
    where organization_id = ${organizationId} and id = ${id}::uuid ${kind ? db`and kind = ${kind}` : db``}
    returning ${db.unsafe(COLUMNS)}`;
  if (!row) throw notFound('credential', { id });
  forgetVerified(id);
  await announceChange(db, id);
  await recordAudit(
    db,
    organizationId,
    actor,
    `${row.kind}_credential.revoked`,
    { type: 'credential', id },
    { name: row.name },
  );
  return row;
}

/**
 * Rotation without downtime: a new secret under the same name, while the old one keeps working
 * for `overlapHours` (so the IdP can be updated) and then expires on its own.
 */
export async function rotateCredential(
  db: Db,
  serverSecret: string,
  organizationId: string,
  id: string,
  overlapHours: number,
  actor: Actor,
): Promise<{ issued: IssuedCredential; previous: Credential }> {
  if (!isUuid(id)) throw notFound('credential', { id });
  return inTransaction(db, async (tx) => {
    const [previous] = await tx<Credential[]>`
      update credentials set expires_at = least(coalesce(expires_at, 'infinity'), now() + ${overlapHours} * interval '1 hour')
      where organization_id = ${organizationId} and id = ${id}::uuid and revoked_at is null
        and (expires_at is null or expires_at > now())
      returning ${tx.unsafe(COLUMNS)}`;
    if (!previous) throw notFound('live credential', { id });
    forgetVerified(id);
    await announceChange(tx, id);
    const issued = await issueCredential(
      tx,
      serverSecret,
      { organizationId, kind: previous.kind, name: previous.name, roles: previous.roles },
      actor,
    );
    await recordAudit(
      tx,
      organizationId,
      actor,
      `${previous.kind}_credential.rotated`,
      { type: 'credential', id },
      {
        name: previous.name,
        replacedBy: issued.id,
        oldExpiresAt: previous.expiresAt,
      },
    );
    return { issued, previous };
  });
}
