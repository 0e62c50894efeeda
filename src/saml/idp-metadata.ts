import crypto from 'node:crypto';
import { invalid } from '../core/errors.ts';
import { XMLSerializer } from '@xmldom/xmldom';
import { checkMetadataSchema } from './schema.ts';
import { NS, UnsafeXmlError, allElements, childElement, childElements, parseUntrustedXml, textOf } from './xml.ts';

export interface IdpSettings {
  entityId: string;
  ssoUrl: string;
  certificates: string[];
}

/** Settings from metadata, with what it says about its own lifetime (SAML metadata §2.3.2). */
export interface IdpMetadata extends IdpSettings {
  /** The earliest validUntil of the entity and the documents around it. */
  validUntil?: Date;
  /** The shortest cacheDuration of the entity and the documents around it, in seconds. */
  cacheDurationSeconds?: number;
}

const REDIRECT_BINDING = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';

/** Reads an IdP's entity id, HTTP-Redirect SSO URL and signing certificates from its metadata XML. */
export function parseIdpMetadata(xml: string): IdpMetadata {
  let doc: Document;
  try {
    doc = parseUntrustedXml(xml);
  } catch (error) {
    if (error instanceof UnsafeXmlError) throw invalid(`metadata: ${error.message}`);
    throw error;
  }
  const entity = [...allElements(doc.documentElement)].find(
    (e) =>
      e.namespaceURI === NS.metadata &&
      e.localName === 'EntityDescriptor' &&
      childElement(e, NS.metadata, 'IDPSSODescriptor'),
  );
  if (!entity) throw invalid('metadata: no EntityDescriptor with an IDPSSODescriptor');
  const descriptor = childElement(entity, NS.metadata, 'IDPSSODescriptor')!;
  const sso = childElements(descriptor, NS.metadata, 'SingleSignOnService').find(
    (e) => e.getAttribute('Binding') === REDIRECT_BINDING,
  );
  if (!sso) throw invalid('metadata: the IdP offers no SingleSignOnService with the HTTP-Redirect binding');
  const certificates = childElements(descriptor, NS.metadata, 'KeyDescriptor')
    .filter((k) => (k.getAttribute('use') ?? 'signing') === 'signing')
    .flatMap((k) => [...allElements(k)].filter((e) => e.namespaceURI === NS.dsig && e.localName === 'X509Certificate'))
    .map((e) => textOf(e) ?? '');
  if (certificates.length === 0) throw invalid('metadata: no signing certificate (KeyDescriptor use="signing")');
  // What the metadata says of its lifetime; values that do not parse are left to the schema check.
  const lifetimes = [entity, ...ancestorsOf(entity)];
  const validUntil = lifetimes.map((e) => Date.parse(e.getAttribute('validUntil') ?? '')).filter(Number.isFinite);
  const cacheDurations = lifetimes
    .map((e) => durationSeconds(e.getAttribute('cacheDuration') ?? ''))
    .filter((v) => v !== undefined);
  return {
    entityId: entity.getAttribute('entityID') ?? '',
    ssoUrl: sso.getAttribute('Location') ?? '',
    certificates: [...new Set(certificates.map(normalizeCertificate))],
    validUntil: validUntil.length ? new Date(Math.min(...validUntil)) : undefined,
    cacheDurationSeconds: cacheDurations.length ? Math.min(...cacheDurations) : undefined,
  };
}

/**
 * Metadata as fetched from a URL: besides what parseIdpMetadata checks, it must be schema-valid
 * SAML metadata and still valid (its validUntil not passed).
 */
export function parseFetchedIdpMetadata(xml: string, now = new Date()): IdpMetadata {
  // The safe-parse checks (no DOCTYPE, bounded depth) run before libxml2 sees the document.
  const metadata = parseIdpMetadata(xml);
  try {
    checkMetadataSchema(withoutForeignRoles(xml));
  } catch (error) {
    throw invalid(`metadata: ${(error as Error).message}`);
  }
  if (metadata.validUntil && metadata.validUntil <= now)
    throw invalid(`metadata: expired (validUntil ${metadata.validUntil.toISOString()})`);
  return metadata;
}

/**
 * The document without RoleDescriptor elements: their types (xsi:type) come from other
 * specifications (Entra ID publishes WS-Federation roles this way) and no schema orgsync has
 * describes them; orgsync reads only the IDPSSODescriptor.
 */
function withoutForeignRoles(xml: string): string {
  const doc = parseUntrustedXml(xml);
  const roles = [...allElements(doc.documentElement)].filter(
    (e) => e.namespaceURI === NS.metadata && e.localName === 'RoleDescriptor',
  );
  if (roles.length === 0) return xml;
  for (const role of roles) role.parentNode?.removeChild(role);
  return new XMLSerializer().serializeToString(doc);
}

function ancestorsOf(element: Element): Element[] {
  const found: Element[] = [];
  for (let node = element.parentNode; node && node.nodeType === 1; node = node.parentNode) found.push(node as Element);
  return found;
}

/** An xs:duration (PnYnMnDTnHnMnS; a year and a month taken as 365 and 30 days) in seconds, or undefined. */
export function durationSeconds(text: string): number | undefined {
  const match =
    /^(-)?P(?!T?$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?!$)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(
      text.trim(),
    );
  if (!match) return undefined;
  const [, minus, years, months, days, hours, minutes, seconds] = match;
  if (minus) return 0;
  return (
    Number(years ?? 0) * 365 * 86_400 +
    Number(months ?? 0) * 30 * 86_400 +
    Number(days ?? 0) * 86_400 +
    Number(hours ?? 0) * 3_600 +
    Number(minutes ?? 0) * 60 +
    Number(seconds ?? 0)
  );
}
/** A certificate as base64 DER without PEM armour or whitespace; refuses what is not an X.509 certificate. */
export function normalizeCertificate(raw: string): string {
  const body = raw.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  try {
    new crypto.X509Certificate(Buffer.from(body, 'base64'));
  } catch {
    throw invalid('a certificate is not a valid X.509 certificate (PEM or base64 DER)');
  }
  return body;
}

/** Expiry of each certificate, shown to admins so a rotation is not missed. */
export function certificateInfo(body: string): { subject: string; notAfter: string; fingerprintSha256: string } {
  const cert = new crypto.X509Certificate(Buffer.from(body, 'base64'));
  return {
    subject: cert.subject,
    notAfter: new Date(cert.validTo).toISOString(),
    fingerprintSha256: cert.fingerprint256,
  };
}
