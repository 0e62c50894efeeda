import type { Db, Sql } from '../storage/database.ts';
import { remember } from './bounded-cache.ts';

/** AuthnRequests live this long: enough to sign in at the IdP, short enough to bound the table. */
export const REQUEST_TTL_SECONDS = 15 * 60;

export async function rememberRequest(
  db: Db,
  input: {
    organizationId: string;
    id: string;
    connectionId: string;
    returnTo: string;
    browserBindingHash: string;
    invitationId: string | null;
  },
): Promise<void> {
  // Request ids are new each time, so expired rows never stand in the insert's way: they are
  // pruned beside it, at most once per PRUNE_EVERY_MS per organization in this process.
  await Promise.all([
    db`
      insert into saml_requests (organization_id, id, connection_id, return_to, browser_binding_hash, invitation_id, expires_at)
      values (${input.organizationId}, ${input.id}, ${input.connectionId}, ${input.returnTo}, ${input.browserBindingHash}, ${input.invitationId},
              now() + make_interval(secs => ${REQUEST_TTL_SECONDS}))`,
    dueForPruning(lastPruned.requests, input.organizationId) &&
      db`delete from saml_requests where organization_id = ${input.organizationId} and expires_at < now()`,
  ]);
}

export interface PendingRequest {
  returnTo: string;
  browserBindingHash: string | null;
  /** Set when the login started from an invitation link. */
  invitationId: string | null;
}

/**
 * Consumes a request this SP sent to that connection; null when unknown, expired or already
 * answered. Answers the hash of the browser binding it was started with (null for a request from
 * before the binding existed): the caller checks it, and a refusal rolls the consumption back.
 */
export async function consumeRequest(
  db: Db,
  organizationId: string,
  connectionId: string,
  id: string,
): Promise<PendingRequest | null> {
  const [row] = await db<PendingRequest[]>`
    delete from saml_requests
    where organization_id = ${organizationId} and id = ${id} and connection_id = ${connectionId} and expires_at > now()
    returning return_to, browser_binding_hash, invitation_id`;
  return row ?? null;
}

/**
 * Records an assertion id as used; false when it was used before. One statement on any pooled
 * connection: the primary key makes it atomic across instances sharing the database, and a row
 * whose assertion has expired counts as free (the update takes it over), so the expired rows
 * need not be gone first. They are pruned beside the statement, at most once per PRUNE_EVERY_MS
 * per organization in this process.
 */
export async function markAssertionUsed(
  sql: Sql,
  organizationId: string,
  assertionId: string,
  usableUntil: Date,
): Promise<boolean> {
  const [inserted] = await Promise.all([
    sql`
      insert into saml_replay_cache (organization_id, assertion_id, expires_at)
      values (${organizationId}, ${assertionId}, ${usableUntil})
      on conflict (organization_id, assertion_id) do update set expires_at = excluded.expires_at
        where saml_replay_cache.expires_at < now()
      returning assertion_id`,
    dueForPruning(lastPruned.replayCache, organizationId) &&
      sql`delete from saml_replay_cache where organization_id = ${organizationId} and expires_at < now()`,
  ]);
  return inserted.length === 1;
}

/** How often this process deletes an organization's expired rows of each table. */
const PRUNE_EVERY_MS = 60_000;
/** When each organization was last pruned, for this many organizations at most (oldest forgotten). */
const PRUNE_TRACKED = 10_000;
const lastPruned = { requests: new Map<string, number>(), replayCache: new Map<string, number>() };

/** Whether the organization's expired rows are due for pruning; if so, they count as pruned now. */
function dueForPruning(pruned: Map<string, number>, organizationId: string): boolean {
  const now = Date.now();
  if (now - (pruned.get(organizationId) ?? 0) < PRUNE_EVERY_MS) return false;
  remember(pruned, organizationId, now, PRUNE_TRACKED);
  return true;
}
