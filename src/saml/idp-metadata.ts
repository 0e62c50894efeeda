import crypto from 'node:crypto';
import { invalid } from '../core/errors.ts';
import { NS, UnsafeXmlError, allElements, childElement, childElements, parseUntrustedXml, textOf } from './xml.ts';

export interface IdpSettings {
  entityId: string;
  ssoUrl: string;
  certificates: string[];
}

const REDIRECT_BINDING = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';

/** Reads an IdP's entity id, HTTP-Redirect SSO URL and signing certificates from its metadata XML. */
export function parseIdpMetadata(xml: string): IdpSettings {
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
  return {
    entityId: entity.getAttribute('entityID') ?? '',
    ssoUrl: sso.getAttribute('Location') ?? '',
    certificates: [...new Set(certificates.map(normalizeCertificate))],
  };
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
