import { systemActor, type Actor } from '../core/actor.ts';
import { recordAudit } from '../core/audit.ts';
import { DomainError, invalid, notFound } from '../core/errors.ts';
import type { Sql } from '../storage/database.ts';
import { firstRow } from '../storage/database.ts';
import {
  assertMayChangeConnection,
  checkConnectionSettings,
  getConnection,
  type MetadataSource,
  type SamlConnection,
} from './connections.ts';
import { certificateInfo, type IdpMetadata } from './idp-metadata.ts';
import { fetchIdpMetadata, type MetadataFetchPolicy } from './metadata-url.ts';

/**
 * Keeps connections that follow a metadata URL up to date. A refresh makes the connection's
 * signing certificates those the metadata lists: an IdP rotating its key publishes the new
 * certificate beside the old one first (both are then accepted) and drops the old one later
 * (then refused). Each certificate added or removed, and a changed SSO URL, is audited. A failed
 * refresh changes no setting: it records its error on the connection and is retried after the floor.
 */

export interface MetadataRefreshPolicy extends MetadataFetchPolicy {
  refreshFloorSeconds: number;
  refreshCeilingSeconds: number;
}

export interface RefreshResult {
  connection: SamlConnection;
  changed: boolean;
  /** Why the refresh failed (the connection keeps its last good settings). */
  error?: DomainError;
}

const reconciler = systemActor('sync', 'reconciler');
const target = (id: string) => ({ type: 'saml_connection', id });
/** Connections refreshed per run of the lane (a full batch asks for another run), and at once. */
const BATCH = 50;
const PARALLEL = 4;

/**
 * When to fetch again: as the metadata's cacheDuration says, and before its validUntil, within
 * the floor and the ceiling; the ceiling when it says neither.
 */
export function nextRefreshAt(
  metadata: Pick<IdpMetadata, 'validUntil' | 'cacheDurationSeconds'>,
  now: Date,
  policy: Pick<MetadataRefreshPolicy, 'refreshFloorSeconds' | 'refreshCeilingSeconds'>,
): Date {
  const hints = [metadata.cacheDurationSeconds];
  if (metadata.validUntil) hints.push((metadata.validUntil.getTime() - now.getTime()) / 1000);
  const known = hints.filter((h) => h !== undefined);
  const wanted = known.length ? Math.min(...known) : policy.refreshCeilingSeconds;
  const seconds = Math.min(Math.max(wanted, policy.refreshFloorSeconds), policy.refreshCeilingSeconds);
  return new Date(now.getTime() + seconds * 1000);
}

/** The settings of a connection being saved with a metadata URL, fetched now. */
export async function settingsFromMetadataUrl(url: string, policy: MetadataRefreshPolicy, now = new Date()) {
  const metadata = await fetchIdpMetadata(url, policy);
  const metadataSource: MetadataSource = {
    url,
    refreshedAt: now,
    validUntil: metadata.validUntil ?? null,
    nextRefreshAt: nextRefreshAt(metadata, now, policy),
  };
  return {
    idpEntityId: metadata.entityId,
    ssoUrl: metadata.ssoUrl,
    certificates: metadata.certificates,
    metadataSource,
  };
}

/** Refreshes every connection whose metadata is due (the reconciler's metadata lane). */
export async function refreshDueMetadata(sql: Sql, policy: MetadataRefreshPolicy, now = new Date()) {
  const due = await sql<{ organizationId: string; id: string }[]>`
    select organization_id, id from saml_connections
    where metadata_url is not null and metadata_next_refresh_at <= ${now}
    order by metadata_next_refresh_at limit ${BATCH}`;
  const counts = { metadataChecked: 0, metadataChanged: 0, metadataFailed: 0 };
  for (let i = 0; i < due.length; i += PARALLEL) {
    const results = await Promise.all(
      due.slice(i, i + PARALLEL).map((c) =>
        // A connection deleted (or taken off its URL) since the query is skipped.
        refreshConnectionMetadata(sql, c.organizationId, c.id, policy, reconciler, now).catch((error: unknown) => {
          if (error instanceof DomainError) return null;
          throw error;
        }),
      ),
    );
    for (const result of results) {
      if (!result) continue;
      counts.metadataChecked += 1;
      if (result.changed) counts.metadataChanged += 1;
      if (result.error) counts.metadataFailed += 1;
    }
  }
  return { ...counts, more: due.length === BATCH };
}

/**
 * Fetches one connection's metadata URL now and applies it (or records why it could not); an admin
 * API caller needs the right to change the connection (the reconciler, a system actor, has it).
 */
export async function refreshConnectionMetadata(
  sql: Sql,
  organizationId: string,
  id: string,
  policy: MetadataRefreshPolicy,
  actor: Actor = reconciler,
  now = new Date(),
): Promise<RefreshResult> {
  const current = await getConnection(sql, organizationId, id);
  if (!current) throw notFound('SAML connection', { id });
  // What the metadata says becomes what the connection trusts: the right to change it, before any fetch.
  await assertMayChangeConnection(sql, organizationId, actor);
  const url = current.metadataUrl;
  if (!url) throw invalid('the connection has no metadata URL');
  let metadata: IdpMetadata;
  try {
    metadata = await fetchIdpMetadata(url, policy);
    if (metadata.entityId !== current.idpEntityId)
      throw invalid(`the metadata is for IdP ${metadata.entityId}, not ${current.idpEntityId}`);
    checkConnectionSettings({ ...current, ssoUrl: metadata.ssoUrl, certificates: metadata.certificates });
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    return { connection: await recordFailure(sql, current, url, error, policy, actor, now), changed: false, error };
  }
  return sql.begin(async (tx) => {
    // Locked, so an admin's change in between is not overwritten with stale reasoning.
    const [locked] = await tx<SamlConnection[]>`
      select * from saml_connections where organization_id = ${organizationId} and id = ${id} for update`;
    if (!locked || locked.metadataUrl !== url) return { connection: locked ?? current, changed: false };
    const added = metadata.certificates.filter((c) => !locked.certificates.includes(c));
    const removed = locked.certificates.filter((c) => !metadata.certificates.includes(c));
    const ssoChanged = metadata.ssoUrl !== locked.ssoUrl;
    const changed = added.length > 0 || removed.length > 0 || ssoChanged;
    const connection = firstRow(
      await tx<SamlConnection[]>`
      update saml_connections set
        certificates = ${metadata.certificates}::text[], sso_url = ${metadata.ssoUrl},
        metadata_refreshed_at = ${now}, metadata_valid_until = ${metadata.validUntil ?? null},
        metadata_next_refresh_at = ${nextRefreshAt(metadata, now, policy)},
        metadata_error = null, metadata_error_at = null,
        updated_at = case when ${changed} then now() else updated_at end
      where organization_id = ${organizationId} and id = ${id}
      returning *`,
    );
    const audit = (action: string, details: Record<string, unknown>) =>
      recordAudit(tx, organizationId, actor, `saml_connection.${action}`, target(id), { metadataUrl: url, ...details });
    for (const certificate of added) await audit('certificate_added', certificateInfo(certificate));
    for (const certificate of removed) await audit('certificate_removed', certificateInfo(certificate));
    if (ssoChanged) await audit('sso_url_changed', { from: locked.ssoUrl, to: metadata.ssoUrl });
    return { connection, changed };
  });
}

/**
 * Records a failed refresh on the connection and when to try again; its settings stay. The first
 * failure after a success is audited (not each retry).
 */
async function recordFailure(
  sql: Sql,
  current: SamlConnection,
  url: string,
  error: DomainError,
  policy: MetadataRefreshPolicy,
  actor: Actor,
  now: Date,
): Promise<SamlConnection> {
  const retryAt = new Date(now.getTime() + policy.refreshFloorSeconds * 1000);
  return sql.begin(async (tx) => {
    const [row] = await tx<SamlConnection[]>`
      update saml_connections set metadata_error = ${error.message}, metadata_error_at = ${now},
        metadata_next_refresh_at = ${retryAt}
      where organization_id = ${current.organizationId} and id = ${current.id} and metadata_url = ${url}
      returning *`;
    if (row && current.metadataError === null)
      await recordAudit(
        tx,
        current.organizationId,
        actor,
        'saml_connection.metadata_refresh_failed',
        target(current.id),
        {
          metadataUrl: url,
          error: error.message,
        },
      );
    return row ?? current;
  });
}
