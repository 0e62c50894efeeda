import { findOrganization, organizationIdOf, type Organization } from '../core/organizations.ts';
import type { Sql } from '../storage/database.ts';
import { singleFlight } from '../storage/single-flight.ts';
import { refusalLog, type RefusalRecord } from './attempts.ts';
import { findConnectionByIssuer, type SamlConnection } from './connections.ts';

/** The organization an ACS post is addressed to, and its connection to the IdP the message names. */
export interface AcsTarget {
  organization: Organization | null;
  /** Null when there is no organization, no issuer, or no connection to it. */
  connection: SamlConnection | null;
}

/**
 * What the ACS's posts share, per pool. Posts arriving together (a hundred junk ones at once, or
 * a morning's logins to one organization) read their organization and connection with one
 * statement in flight (storage/single-flight.ts: nothing is kept beyond it), and their refusals'
 * bookkeeping is written a batch at a time (attempts.ts refusalLog). The answers are shared:
 * nobody changes them.
 */
export interface AcsShared {
  find(slug: string, issuer: string | null): Promise<AcsTarget>;
  logRefusal(refusal: RefusalRecord): Promise<void>;
}

export function acsShared(sql: Sql): AcsShared {
  const lookups = singleFlight<AcsTarget>();
  return {
    find: (slug, issuer) => lookups(JSON.stringify([slug, issuer]), () => findTarget(sql, slug, issuer)),
    logRefusal: refusalLog(sql),
  };
}

/**
 * The organization and its connection in one round trip: both statements sent at once, on
 * whichever pooled connections are free (none is reserved: with a small pool a reservation waits
 * for a connection with nothing in flight), the second naming the organization by a subquery
 * since it cannot wait for the first's answer.
 */
async function findTarget(sql: Sql, slug: string, issuer: string | null): Promise<AcsTarget> {
  if (issuer === null) return { organization: await findOrganization(sql, slug), connection: null };
  const [organization, connection] = await Promise.all([
    findOrganization(sql, slug),
    findConnectionByIssuer(sql, organizationIdOf(sql, slug), issuer),
  ]);
  if (!organization) return { organization, connection: null };
  // Each statement sees the database as it is when it runs: should the organization at the slug
  // have been replaced in between, the connection is looked up again, by the organization found.
  if (connection && connection.organizationId !== organization.id)
    return { organization, connection: await findConnectionByIssuer(sql, organization.id, issuer) };
  return { organization, connection };
}
