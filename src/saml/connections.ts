import type { Actor } from '../core/actor.ts';
import { recordAudit } from '../core/audit.ts';
import { assertMayConfigureIdentity } from '../core/authority.ts';
import { conflict, invalid, isUniqueViolation, notFound } from '../core/errors.ts';
import { isUuid } from '../core/ids.ts';
import { lockRequiredSso } from '../core/required-sso.ts';
import type { Db, Fragment, Tx } from '../storage/database.ts';
import { firstRow, inTransaction } from '../storage/database.ts';
import { certificateInfo, normalizeCertificate } from './idp-metadata.ts';

export interface AttributeMapping {
  email?: string;
  firstName?: string;
  lastName?: string;
  groups?: string;
}

export interface SamlConnection {
  organizationId: string;
  id: string;
  name: string;
  idpEntityId: string;
  ssoUrl: string;
  certificates: string[];
  attributeMapping: AttributeMapping;
  allowIdpInitiated: boolean;
  enabled: boolean;
  allowedReturnUrls: string[];
  clockSkewSeconds: number;
  /** Sign-ins replace an existing account's name with the assertion's (off: names only fill a new account). */
  updateProfile: boolean;
  /** Where the IdP publishes its metadata; null: the settings were given by hand or pasted. */
  metadataUrl: string | null;
  metadataRefreshedAt: Date | null;
  metadataValidUntil: Date | null;
  metadataNextRefreshAt: Date | null;
  /** The last failed refresh (cleared by a successful one); the settings stay the last good ones. */
  metadataError: string | null;
  metadataErrorAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** Metadata fetched from a URL, and when to fetch it again. */
export interface MetadataSource {
  url: string;
  refreshedAt: Date;
  validUntil: Date | null;
  nextRefreshAt: Date;
}

export interface ConnectionInput {
  name: string;
  idpEntityId: string;
  ssoUrl: string;
  certificates: string[];
  attributeMapping?: AttributeMapping;
  allowIdpInitiated?: boolean;
  enabled?: boolean;
  allowedReturnUrls?: string[];
  clockSkewSeconds?: number;
  updateProfile?: boolean;
  /** Set: the settings came from this URL (refreshed from now on); null: stop refreshing. */
  metadataSource?: MetadataSource | null;
}

const target = (id: string) => ({ type: 'saml_connection', id });
const MAX_CERTIFICATES = 10;

/** The SHA-256 fingerprint audit entries name a certificate by. */
export const fingerprintOf = (certificate: string) => certificateInfo(certificate).fingerprintSha256;

export async function listConnections(db: Db, organizationId: string): Promise<SamlConnection[]> {
  return db<
    SamlConnection[]
  >`select * from saml_connections where organization_id = ${organizationId} order by created_at, id`;
}

export async function getConnection(db: Db, organizationId: string, id: string): Promise<SamlConnection | null> {
  if (!isUuid(id)) return null;
  const [row] = await db<
    SamlConnection[]
  >`select * from saml_connections where organization_id = ${organizationId} and id = ${id}`;
  return row ?? null;
}

/** The organization's connection to the IdP `issuer`; the organization by id, or as a subquery (organizationIdOf). */
export async function findConnectionByIssuer(
  db: Db,
  organization: string | Fragment,
  issuer: string,
): Promise<SamlConnection | null> {
  const [row] = await db<SamlConnection[]>`
    select * from saml_connections where organization_id = ${organization} and idp_entity_id = ${issuer}`;
  return row ?? null;
}

/** A connection lets its IdP assert anyone's email: only a caller holding every permission may add one. */
export const assertMayConnectIdp = (db: Db, organizationId: string, actor: Actor) =>
  assertMayConfigureIdentity(db, organizationId, actor, 'connect an identity provider');

/** The same right to change what a connection trusts (anything but its name, or disabling it). */
export const assertMayChangeConnection = (db: Db, organizationId: string, actor: Actor) =>
  assertMayConfigureIdentity(db, organizationId, actor, 'change an identity provider connection');

export async function createConnection(
  db: Db,
  organizationId: string,
  input: ConnectionInput,
  actor: Actor,
): Promise<SamlConnection> {
  const checked = checkConnectionSettings(input);
  await assertMayConnectIdp(db, organizationId, actor);
  const source = checked.metadataSource;
  try {
    const row = firstRow(
      await db<SamlConnection[]>`
      insert into saml_connections (organization_id, name, idp_entity_id, sso_url, certificates, attribute_mapping,
                                    allow_idp_initiated, enabled, allowed_return_urls, clock_skew_seconds, update_profile,
                                    metadata_url, metadata_refreshed_at, metadata_valid_until, metadata_next_refresh_at)
      values (${organizationId}, ${checked.name}, ${checked.idpEntityId}, ${checked.ssoUrl}, ${checked.certificates}::text[],
              ${db.json((checked.attributeMapping ?? {}) as never)}, ${checked.allowIdpInitiated ?? true}, ${checked.enabled ?? true},
              ${checked.allowedReturnUrls ?? []}::text[], ${checked.clockSkewSeconds ?? 120}, ${checked.updateProfile ?? false},
              ${source?.url ?? null}, ${source?.refreshedAt ?? null}, ${source?.validUntil ?? null}, ${source?.nextRefreshAt ?? null})
      returning *`,
    );
    await recordAudit(db, organizationId, actor, 'saml_connection.created', target(row.id), {
      idpEntityId: row.idpEntityId,
      ...(source ? { metadataUrl: source.url } : {}),
      certificates: row.certificates.map(fingerprintOf),
    });
    return row;
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`a connection for IdP ${checked.idpEntityId} already exists`);
    throw error;
  }
}

/** Whether the organization has an enabled connection (required SSO needs one). */
export async function hasEnabledConnection(db: Db, organizationId: string): Promise<boolean> {
  const [row] = await db`select 1 from saml_connections where organization_id = ${organizationId} and enabled limit 1`;
  return Boolean(row);
}

/**
 * While SSO is required, the last enabled connection can be neither disabled nor deleted: nobody
 * but the break-glass owners could sign in. The organization row is locked against a concurrent
 * change of the setting.
 */
async function assertNotLastRequiredConnection(tx: Tx, organizationId: string, id: string): Promise<void> {
  if (!(await lockRequiredSso(tx, organizationId))) return;
  const [other] = await tx`
    select 1 from saml_connections where organization_id = ${organizationId} and enabled and id <> ${id} limit 1`;
  if (!other)
    throw conflict('SSO is required and this is the only enabled SAML connection: stop requiring SSO first', {
      setting: 'requireSso',
    });
}

export function updateConnection(
  db: Db,
  organizationId: string,
  id: string,
  change: Partial<ConnectionInput>,
  actor: Actor,
): Promise<SamlConnection> {
  return inTransaction(db, (tx) => updateConnectionIn(tx, organizationId, id, change, actor));
}

async function updateConnectionIn(
  db: Tx,
  organizationId: string,
  id: string,
  change: Partial<ConnectionInput>,
  actor: Actor,
): Promise<SamlConnection> {
  const current = await getConnection(db, organizationId, id);
  if (!current) throw notFound('SAML connection', { id });
  if (change.enabled === false && current.enabled) await assertNotLastRequiredConnection(db, organizationId, id);
  // Renaming or disabling a connection gives nobody a way in; anything else may.
  const opensNothing = Object.entries(change).every(
    ([key, value]) => key === 'name' || (key === 'enabled' && value === false),
  );
  if (!opensNothing) await assertMayChangeConnection(db, organizationId, actor);
  const next = checkConnectionSettings({ ...current, ...change });
  const source = change.metadataSource;
  // Absent: the URL and its state stay; null: the connection no longer follows a URL.
  const metadataColumns =
    source === undefined
      ? db``
      : db`, metadata_url = ${source?.url ?? null}, metadata_refreshed_at = ${source?.refreshedAt ?? null},
           metadata_valid_until = ${source?.validUntil ?? null}, metadata_next_refresh_at = ${source?.nextRefreshAt ?? null},
           metadata_error = null, metadata_error_at = null`;
  try {
    const row = firstRow(
      await db<SamlConnection[]>`
      update saml_connections set
        name = ${next.name}, idp_entity_id = ${next.idpEntityId}, sso_url = ${next.ssoUrl},
        certificates = ${next.certificates}::text[], attribute_mapping = ${db.json((next.attributeMapping ?? {}) as never)},
        allow_idp_initiated = ${next.allowIdpInitiated ?? true}, enabled = ${next.enabled ?? true},
        allowed_return_urls = ${next.allowedReturnUrls ?? []}::text[], clock_skew_seconds = ${next.clockSkewSeconds ?? 120},
        update_profile = ${next.updateProfile ?? false}, updated_at = now() ${metadataColumns}
      where organization_id = ${organizationId} and id = ${current.id}
      returning *`,
    );
    await recordAudit(db, organizationId, actor, 'saml_connection.updated', target(row.id), {
      changed: Object.keys(change),
      ...(source ? { metadataUrl: source.url } : {}),
      ...certificateChanges(current.certificates, row.certificates),
    });
    return row;
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`a connection for IdP ${next.idpEntityId} already exists`);
    throw error;
  }
}

export async function deleteConnection(db: Db, organizationId: string, id: string, actor: Actor): Promise<void> {
  if (!isUuid(id)) throw notFound('SAML connection', { id });
  await inTransaction(db, async (tx) => {
    await assertNotLastRequiredConnection(tx, organizationId, id);
    const rows =
      await tx`delete from saml_connections where organization_id = ${organizationId} and id = ${id} returning id`;
    if (rows.length === 0) throw notFound('SAML connection', { id });
    await recordAudit(tx, organizationId, actor, 'saml_connection.deleted', target(id));
  });
}

/** Fingerprints of the certificates added and removed (absent when none), for audit entries. */
export function certificateChanges(before: string[], after: string[]) {
  const added = after.filter((c) => !before.includes(c)).map(fingerprintOf);
  const removed = before.filter((c) => !after.includes(c)).map(fingerprintOf);
  return {
    ...(added.length ? { certificatesAdded: added } : {}),
    ...(removed.length ? { certificatesRemoved: removed } : {}),
  };
}

/** Checks and normalizes a connection's settings (certificates as base64 DER, without duplicates). */
export function checkConnectionSettings<T extends ConnectionInput>(input: T): T {
  if (!/^https:\/\//i.test(input.ssoUrl) && !/^http:\/\/(localhost|127\.0\.0\.1)[:/]/i.test(input.ssoUrl)) {
    throw invalid('ssoUrl must be an https URL (http only for localhost)');
  }
  try {
    new URL(input.ssoUrl);
  } catch {
    throw invalid('ssoUrl is not a URL');
  }
  if (input.idpEntityId.trim() === '') throw invalid('idpEntityId is empty');
  if (input.certificates.length === 0 || input.certificates.length > MAX_CERTIFICATES)
    throw invalid(`a connection has 1 to ${MAX_CERTIFICATES} signing certificates`);
  for (const url of input.allowedReturnUrls ?? []) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw invalid(`allowedReturnUrls: not an absolute URL: ${url}`);
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')
      throw invalid(`allowedReturnUrls: only http(s) URLs: ${url}`);
  }
  return { ...input, certificates: [...new Set(input.certificates.map(normalizeCertificate))] };
}
