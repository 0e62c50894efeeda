import type { Db, Sql } from '../storage/database.ts';

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
  await db`delete from saml_requests where organization_id = ${input.organizationId} and expires_at < now()`;
  await db`
    insert into saml_requests (organization_id, id, connection_id, return_to, browser_binding_hash, invitation_id, expires_at)
    values (${input.organizationId}, ${input.id}, ${input.connectionId}, ${input.returnTo}, ${input.browserBindingHash}, ${input.invitationId},
            now() + make_interval(secs => ${REQUEST_TTL_SECONDS}))`;
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
 * Records an assertion id as used; false when it was used before. The primary key makes this
 * atomic across instances sharing the database.
 */
export async function markAssertionUsed(
  sql: Sql,
  organizationId: string,
  assertionId: string,
  usableUntil: Date,
): Promise<boolean> {
  // Both statements in one round trip: sent together on one connection, which runs them in order.
  const connection = await sql.reserve();
  try {
    const [, inserted] = await Promise.all([
      connection`delete from saml_replay_cache where organization_id = ${organizationId} and expires_at < now()`,
      connection`
        insert into saml_replay_cache (organization_id, assertion_id, expires_at)
        values (${organizationId}, ${assertionId}, ${usableUntil})
        on conflict do nothing
        returning assertion_id`,
    ]);
    return inserted.length === 1;
  } finally {
    connection.release();
  }
}
