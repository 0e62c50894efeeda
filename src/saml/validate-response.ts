import samlify from 'samlify';
import type { SamlConnection } from './connections.ts';
import { SamlRefusal, refuse } from './refusal.ts';
import { checkSamlSchema } from './schema.ts';
import type { ServiceProviderEntity, SpUrls } from './service-provider.ts';
import {
  NS,
  UnsafeXmlError,
  allElements,
  childElement,
  childElements,
  containsComment,
  parseUntrustedXml,
  textOf,
} from './xml.ts';
import { VerifierStopped, verifySignatureInWorker } from './signature-verifier.ts';

/** Largest SAMLResponse form value accepted (base64); real responses are a few kilobytes. */
export const MAX_RESPONSE_BASE64_LENGTH = 256 * 1024;

const SUCCESS = 'urn:oasis:names:tc:SAML:2.0:status:Success';
const BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';

/** Signature and digest algorithms accepted; SHA-1 (and anything unknown) is refused. */
const STRONG_SIGNATURE_METHODS = new Set([
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha384',
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512',
]);
const STRONG_DIGEST_METHODS = new Set([
  'http://www.w3.org/2001/04/xmlenc#sha256',
  'http://www.w3.org/2001/04/xmldsig-more#sha384',
  'http://www.w3.org/2001/04/xmlenc#sha512',
]);
const WEAK_ENCRYPTION_METHODS = new Set(['http://www.w3.org/2001/04/xmlenc#rsa-1_5']);
/** Content encryption (EncryptedData) accepted: AES, in the sizes and modes the decryptor implements. */
const CONTENT_ENCRYPTION_METHODS = new Set([
  'http://www.w3.org/2001/04/xmlenc#aes128-cbc',
  'http://www.w3.org/2001/04/xmlenc#aes256-cbc',
  'http://www.w3.org/2009/xmlenc11#aes128-gcm',
  'http://www.w3.org/2009/xmlenc11#aes256-gcm',
]);
const WEAK_CONTENT_ENCRYPTION_METHODS = new Set(['http://www.w3.org/2001/04/xmlenc#tripledes-cbc']);
const USE_AES = 'use AES-128 or AES-256, CBC or GCM';
const SUBJECT_IDS = ['NameID', 'BaseID', 'EncryptedID'];

/** The parts of a response the signature covers, once every check has passed. */
export interface VerifiedAssertion {
  assertionId: string;
  issuer: string;
  nameId: string;
  /** The NameID's Format attribute, if any (an emailAddress NameID must agree with the email). */
  nameIdFormat: string | null;
  /** Every value of every attribute, same-name attributes merged: identityOf judges conflicts. */
  attributes: Map<string, string[]>;
  /** From the signed SubjectConfirmationData (or the Response when it is signed). */
  inResponseTo: string | null;
  /** The assertion cannot be used after this: the replay cache keeps its id until then. */
  usableUntil: Date;
  /** The IdP's SessionNotOnOrAfter: our session must not outlive it. */
  sessionEndsAt: Date | null;
}

/**
 * The organization's SP as a response's checks see it: its URLs, and its entity, whose key
 * decrypts. The entity is built on first use (its key pair read, or made), so only an encrypted
 * assertion asks for it, once the checks before decryption have passed.
 */
export interface ServiceProviderSide {
  urls: SpUrls;
  entity: () => Promise<ServiceProviderEntity>;
}

/** Decodes the SAMLResponse form value, refusing what is too large or not base64. */
export function decodeSamlResponse(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') refuse('malformed', 'the request carries no SAMLResponse');
  const compact = value.replace(/\s+/g, '');
  if (compact.length > MAX_RESPONSE_BASE64_LENGTH)
    refuse('oversized', `the SAMLResponse exceeds ${MAX_RESPONSE_BASE64_LENGTH} bytes`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) refuse('malformed', 'the SAMLResponse is not base64');
  return Buffer.from(compact, 'base64').toString('utf8');
}

/** Parses the response XML safely and answers the issuer it claims (not yet trusted). */
export function readResponse(xml: string): { doc: Document; claimedIssuer: string | null } {
  let doc: Document;
  try {
    doc = parseUntrustedXml(xml);
  } catch (error) {
    if (error instanceof UnsafeXmlError)
      refuse(
        ({ doctype: 'doctype', too_deep: 'xml_too_deep', malformed: 'malformed' } as const)[error.kind],
        error.message,
      );
    throw error;
  }
  const root = doc.documentElement;
  if (root.namespaceURI !== NS.protocol || root.localName !== 'Response')
    refuse('malformed', 'the message is not a SAML Response');
  const assertion = childElement(root, NS.assertion, 'Assertion');
  const claimedIssuer =
    textOf(childElement(root, NS.assertion, 'Issuer')) ??
    (assertion && textOf(childElement(assertion, NS.assertion, 'Issuer')));
  return { doc, claimedIssuer };
}

/**
 * Every check samlify does not do itself, in an order that reports the most telling reason:
 * structure (signature wrapping), algorithms, schema, status, signature by a configured
 * certificate, then — on the signed assertion only — issuer, destination, recipient,
 * audience and time window. InResponseTo and replay need the database: the caller checks them.
 */
export async function verifyResponse(
  xml: string,
  doc: Document,
  connection: SamlConnection,
  sp: ServiceProviderSide,
  now: Date = new Date(),
): Promise<VerifiedAssertion> {
  const root = doc.documentElement;
  checkStructure(root);
  checkAlgorithms(root);
  checkSignaturePresent(root);
  checkSchema(xml, 'the response');
  checkStatus(root);

  const { verifiedXml } = childElement(root, NS.assertion, 'EncryptedAssertion')
    ? await decryptAndVerify(xml, doc, connection, await sp.entity())
    : { verifiedXml: await verifySignature(xml, doc, connection) };

  const assertion = parseUntrustedXml(verifiedXml).documentElement;
  if (assertion.namespaceURI !== NS.assertion || assertion.localName !== 'Assertion')
    refuse('signature_missing', 'the signature does not cover an assertion');
  // From here on the assertion is the IdP's: a refusal names it, so the caller keeps its id
  // consumed (a captured assertion refused today cannot be replayed once the reason is gone).
  const assertionId = assertion.getAttribute('ID');
  const usableUntil = usableUntilOf(assertion, connection.clockSkewSeconds * 1000);
  try {
    if (containsComment(assertion))
      refuse('comment_in_assertion', 'the signed assertion contains an XML comment (it could truncate the NameID)');
    return readAssertion(assertion, root, connection, sp.urls, now, usableUntil);
  } catch (error) {
    if (error instanceof SamlRefusal && assertionId && usableUntil)
      error.signedAssertion ??= { assertionId, usableUntil };
    throw error;
  }
}

/**
 * A message with no signature anywhere (and no encrypted assertion, whose signature may be
 * inside) can never be accepted: refused before the schema pass and anything costlier.
 */
function checkSignaturePresent(root: Element): void {
  if (childElement(root, NS.assertion, 'EncryptedAssertion')) return;
  for (const element of allElements(root)) {
    if (element.namespaceURI === NS.dsig && element.localName === 'Signature') return;
  }
  refuse('signature_missing', 'neither the response nor the assertion is signed');
}

function checkSchema(xml: string, what: string): void {
  try {
    checkSamlSchema(xml);
  } catch (error) {
    refuse('schema_invalid', `${what} does not match the SAML 2.0 schema (${(error as Error).message.slice(0, 300)})`);
  }
}

function checkStatus(root: Element): void {
  const status = childElement(root, NS.protocol, 'Status');
  const code = status && childElement(status, NS.protocol, 'StatusCode');
  const value = code?.getAttribute('Value') ?? null;
  if (value !== SUCCESS) {
    const second = code && childElement(code, NS.protocol, 'StatusCode')?.getAttribute('Value');
    const message = status && textOf(childElement(status, NS.protocol, 'StatusMessage'));
    refuse(
      'status_not_success',
      `the IdP answered status ${value ?? '(none)'}${second ? ` / ${second}` : ''}${message ? `: ${message}` : ''}`,
    );
  }
}

/**
 * Signatures: the SignatureMethod and the DigestMethod of each signed Reference must be SHA-256
 * or stronger. A DigestMethod elsewhere is not a signature's: inside a key transport
 * EncryptionMethod it is RSA-OAEP's own hash (SHA-1 for rsa-oaep-mgf1p, as ADFS, Okta and
 * Shibboleth write it), which is fine. Key transport is judged by its EncryptionMethod: RSA 1.5
 * is refused. Content encryption (the EncryptedData's EncryptionMethod) must be AES that the
 * decryptor implements: 3DES is refused as weak, before anything is decrypted; AES-192 and
 * anything unknown cannot be decrypted. Elements are matched by local name alone, as xml-crypto
 * and xml-encryption find them.
 */
function checkAlgorithms(root: Element): void {
  for (const element of allElements(root)) {
    const algorithm = element.getAttribute('Algorithm') ?? '';
    if (element.localName === 'SignatureMethod' && !STRONG_SIGNATURE_METHODS.has(algorithm)) {
      refuse('weak_algorithm', `signature algorithm not accepted: ${algorithm} (use RSA-SHA256 or stronger)`);
    }
    const parent = element.parentNode as Element | null;
    if (
      element.localName === 'DigestMethod' &&
      parent?.localName === 'Reference' &&
      !STRONG_DIGEST_METHODS.has(algorithm)
    ) {
      refuse('weak_algorithm', `signature digest algorithm not accepted: ${algorithm} (use SHA-256 or stronger)`);
    }
    if (element.localName === 'EncryptionMethod' && parent?.localName === 'EncryptedData') {
      if (WEAK_CONTENT_ENCRYPTION_METHODS.has(algorithm))
        refuse('weak_algorithm', `content encryption algorithm not accepted: ${algorithm} (${USE_AES})`);
      if (!CONTENT_ENCRYPTION_METHODS.has(algorithm))
        refuse('decryption_failed', `content encryption algorithm not supported: ${algorithm} (${USE_AES})`);
    } else if (element.localName === 'EncryptionMethod' && WEAK_ENCRYPTION_METHODS.has(algorithm)) {
      refuse('weak_algorithm', `key transport algorithm not accepted: ${algorithm} (use RSA-OAEP)`);
    }
  }
}

/**
 * Signature wrapping defences: exactly one assertion, directly inside the Response; no element
 * id used twice; each signature sits directly in the element it signs and references it.
 */
function checkStructure(root: Element): void {
  const elements = [...allElements(root)];
  const assertions = elements.filter(
    (e) => e.namespaceURI === NS.assertion && (e.localName === 'Assertion' || e.localName === 'EncryptedAssertion'),
  );
  if (assertions.length !== 1)
    refuse('signature_wrapping', `expected exactly one assertion, found ${assertions.length}`);
  if (assertions[0]!.parentNode !== root)
    refuse('signature_wrapping', 'the assertion is not a direct child of the Response');
  // Canonicalization drops comments, so a comment can split a signed NameID into a shorter identity.
  if (containsComment(assertions[0]!))
    refuse('comment_in_assertion', 'the assertion contains an XML comment (it could truncate the NameID)');
  // Before the schema check, which would refuse it too but without saying what is wrong.
  const subject = childElement(assertions[0]!, NS.assertion, 'Subject');
  const subjectIds = subject ? SUBJECT_IDS.flatMap((name) => childElements(subject, NS.assertion, name)) : [];
  if (subjectIds.length > 1)
    refuse(
      'ambiguous_identity',
      `the assertion's Subject names ${subjectIds.length} identities (NameID, BaseID or EncryptedID)`,
    );

  const ids = new Set<string>();
  for (const element of elements) {
    for (const name of ['ID', 'Id', 'id']) {
      const id = element.getAttribute(name);
      if (!id) continue;
      if (ids.has(id)) refuse('signature_wrapping', `the id ${JSON.stringify(id)} is used twice`);
      ids.add(id);
    }
  }

  for (const signature of elements.filter((e) => e.namespaceURI === NS.dsig && e.localName === 'Signature')) {
    const parent = signature.parentNode as Element;
    if (parent !== root && parent !== assertions[0])
      refuse('signature_wrapping', `a signature sits inside ${parent.localName}, not the Response or the assertion`);
    const signedInfo = childElement(signature, NS.dsig, 'SignedInfo');
    const references = signedInfo ? childElements(signedInfo, NS.dsig, 'Reference') : [];
    const expected = `#${parent.getAttribute('ID') ?? ''}`;
    if (references.length !== 1 || references[0]!.getAttribute('URI') !== expected) {
      refuse('signature_wrapping', `a signature must reference exactly its own ${parent.localName} (${expected})`);
    }
  }
}

/**
 * The signature (the Response's or the assertion's) is verified as samlify does it
 * (xml-signature.ts, in a worker thread) and answers the assertion it covers; we try each
 * configured certificate in turn, so a rotation needs no downtime.
 */
async function verifySignature(xml: string, doc: Document, connection: SamlConnection): Promise<string> {
  const signatures = [...allElements(doc.documentElement)].filter(
    (e) => e.namespaceURI === NS.dsig && e.localName === 'Signature',
  );
  if (signatures.length === 0) refuse('signature_missing', 'neither the response nor the assertion is signed');
  let unknownCertificate = false;
  let failure = '';
  for (const certificate of connection.certificates) {
    try {
      const [verified, signed] = await verifySignatureInWorker(xml, certificate);
      if (verified) return signed ?? refuse('signature_missing', 'the signature covers no assertion');
    } catch (error) {
      // A verifier that stopped is the server's failure, not the message's.
      if (error instanceof SamlRefusal || error instanceof VerifierStopped) throw error;
      const message = String((error as Error).message ?? error);
      if (message.includes('ERR_POTENTIAL_WRAPPING_ATTACK'))
        refuse('signature_wrapping', 'an assertion or signature is hidden inside SubjectConfirmationData');
      if (message.includes('UNMATCH_CERTIFICATE')) unknownCertificate = true;
      else failure = message.slice(0, 200);
    }
  }
  if (unknownCertificate)
    refuse('unknown_certificate', 'the response is signed with a certificate not configured for this connection');
  // The verifier's own words, when it threw, so an admin reading the attempt log can tell why.
  return refuse(
    'signature_invalid',
    `the signature does not verify with any configured certificate${failure ? ` (${failure})` : ''}`,
  );
}

/**
 * An encrypted assertion: when the Response itself is signed, verify first and decrypt what the
 * signature covers; otherwise decrypt, then the assertion inside must carry a valid signature.
 */
async function decryptAndVerify(
  xml: string,
  doc: Document,
  connection: SamlConnection,
  entity: ServiceProviderEntity,
): Promise<{ verifiedXml: string }> {
  const decrypt = async (source: string) => {
    try {
      return await samlify.SamlLib.decryptAssertion(entity.sp, source);
    } catch {
      return refuse('decryption_failed', "the encrypted assertion cannot be decrypted with this organization's SP key");
    }
  };
  // The decrypted document gets the same structure, algorithm and schema checks as a plain one.
  const decryptChecked = async (source: string) => {
    const [decryptedResponse, assertion] = await decrypt(source);
    const decryptedDoc = readResponse(decryptedResponse).doc;
    checkStructure(decryptedDoc.documentElement);
    checkAlgorithms(decryptedDoc.documentElement);
    checkSchema(decryptedResponse, 'the decrypted assertion');
    return { decryptedResponse, decryptedDoc, assertion };
  };
  if (childElement(doc.documentElement, NS.dsig, 'Signature')) {
    return { verifiedXml: (await decryptChecked(await verifySignature(xml, doc, connection))).assertion };
  }
  const { decryptedResponse, decryptedDoc } = await decryptChecked(xml);
  return { verifiedXml: await verifySignature(decryptedResponse, decryptedDoc, connection) };
}

/**
 * Reads the identity and its conditions from the signed assertion. The Response element around
 * it may be unsigned: its Issuer, Destination and InResponseTo can only refuse, never grant.
 */
function readAssertion(
  assertion: Element,
  response: Element,
  connection: SamlConnection,
  urls: SpUrls,
  now: Date,
  usableUntil: Date | null,
): VerifiedAssertion {
  const skewMs = connection.clockSkewSeconds * 1000;
  const issuer = textOf(childElement(assertion, NS.assertion, 'Issuer'));
  if (issuer !== connection.idpEntityId)
    refuse(
      'wrong_issuer',
      `the assertion is issued by ${JSON.stringify(issuer)}, expected ${JSON.stringify(connection.idpEntityId)}`,
    );
  const responseIssuer = textOf(childElement(response, NS.assertion, 'Issuer'));
  if (responseIssuer !== null && responseIssuer !== connection.idpEntityId)
    refuse('wrong_issuer', `the response is issued by ${JSON.stringify(responseIssuer)}`);

  // SAML bindings 3.5.5.2: a signed HTTP-POST message must name where it is meant to be delivered.
  const destination = response.getAttribute('Destination');
  if (!destination && childElement(response, NS.dsig, 'Signature')) {
    refuse(
      'wrong_destination',
      `the signed Response has no Destination (a signed HTTP-POST message must name ${urls.acsUrl})`,
    );
  }
  if (destination && destination !== urls.acsUrl)
    refuse('wrong_destination', `the response is addressed to ${destination}, not ${urls.acsUrl}`);

  const subject = childElement(assertion, NS.assertion, 'Subject');
  const nameIdElement = subject && childElement(subject, NS.assertion, 'NameID');
  const nameId = textOf(nameIdElement);
  if (!nameId) refuse('malformed', 'the assertion has no NameID');

  // Bearer confirmation (SAML profiles 4.1.4.2): Recipient is our ACS, NotOnOrAfter bounds its use.
  const confirmations = (subject ? childElements(subject, NS.assertion, 'SubjectConfirmation') : [])
    .filter((c) => c.getAttribute('Method') === BEARER)
    .map((c) => childElement(c, NS.assertion, 'SubjectConfirmationData'));
  if (confirmations.length === 0 || confirmations.some((d) => !d))
    refuse('malformed', 'the assertion has no bearer SubjectConfirmationData');
  const data = confirmations[0]!;
  const recipient = data.getAttribute('Recipient');
  if (recipient !== urls.acsUrl)
    refuse('wrong_recipient', `the assertion is for recipient ${JSON.stringify(recipient)}, not ${urls.acsUrl}`);
  const confirmationNotOnOrAfter = parseTime(data.getAttribute('NotOnOrAfter'));
  if (!confirmationNotOnOrAfter) refuse('malformed', 'SubjectConfirmationData has no NotOnOrAfter');
  if (now.getTime() >= confirmationNotOnOrAfter.getTime() + skewMs)
    refuse('expired', `the assertion expired at ${confirmationNotOnOrAfter.toISOString()}`);

  const conditions = childElement(assertion, NS.assertion, 'Conditions');
  if (!conditions) refuse('wrong_audience', 'the assertion has no Conditions (and so no audience restriction)');
  const notBefore = parseTime(conditions.getAttribute('NotBefore'));
  const notOnOrAfter = parseTime(conditions.getAttribute('NotOnOrAfter'));
  if (notBefore && now.getTime() < notBefore.getTime() - skewMs)
    refuse('not_yet_valid', `the assertion is valid only from ${notBefore.toISOString()}`);
  if (notOnOrAfter && now.getTime() >= notOnOrAfter.getTime() + skewMs)
    refuse('expired', `the assertion expired at ${notOnOrAfter.toISOString()}`);

  const restrictions = childElements(conditions, NS.assertion, 'AudienceRestriction');
  if (restrictions.length === 0) refuse('wrong_audience', 'the assertion has no AudienceRestriction');
  for (const restriction of restrictions) {
    const audiences = childElements(restriction, NS.assertion, 'Audience').map((a) => textOf(a));
    if (!audiences.includes(urls.entityId))
      refuse('wrong_audience', `the assertion is meant for ${audiences.join(', ')}, not ${urls.entityId}`);
  }

  // InResponseTo: the signed one in SubjectConfirmationData (SAML profiles 4.1.4.2); the Response's must agree.
  const inResponseTo = data.getAttribute('InResponseTo') || null;
  const responseInResponseTo = response.getAttribute('InResponseTo') || null;
  if (responseInResponseTo && responseInResponseTo !== inResponseTo) {
    refuse('in_response_to_mismatch', 'the Response answers a request the signed assertion does not name');
  }

  const authn = childElement(assertion, NS.assertion, 'AuthnStatement');
  const sessionNotOnOrAfter = parseTime(authn?.getAttribute('SessionNotOnOrAfter') ?? null);
  if (sessionNotOnOrAfter && now.getTime() >= sessionNotOnOrAfter.getTime() + skewMs)
    refuse('expired', 'the IdP session has ended (SessionNotOnOrAfter)');

  return {
    assertionId: assertion.getAttribute('ID') ?? refuse('malformed', 'the assertion has no ID'),
    issuer,
    nameId,
    nameIdFormat: nameIdElement!.getAttribute('Format') || null,
    attributes: readAttributes(assertion),
    inResponseTo,
    // Set whenever the bearer NotOnOrAfter is, and the checks above refused its absence.
    usableUntil: usableUntil!,
    sessionEndsAt: sessionNotOnOrAfter,
  };
}

function readAttributes(assertion: Element): Map<string, string[]> {
  const attributes = new Map<string, string[]>();
  for (const statement of childElements(assertion, NS.assertion, 'AttributeStatement')) {
    for (const attribute of childElements(statement, NS.assertion, 'Attribute')) {
      const name = attribute.getAttribute('Name') ?? '';
      const values = childElements(attribute, NS.assertion, 'AttributeValue')
        .map((v) => textOf(v))
        .filter((v): v is string => v !== null);
      attributes.set(name, [...(attributes.get(name) ?? []), ...values]);
    }
  }
  return attributes;
}

/**
 * The last moment the assertion could be accepted: its bearer confirmation's NotOnOrAfter (or the
 * Conditions' when later), plus the clock skew. Null when it has none: it can never be accepted.
 */
function usableUntilOf(assertion: Element, skewMs: number): Date | null {
  const time = (value: string | null | undefined) => (value ? new Date(value).getTime() : Number.NaN);
  const subject = childElement(assertion, NS.assertion, 'Subject');
  const bearer = (subject ? childElements(subject, NS.assertion, 'SubjectConfirmation') : []).find(
    (c) => c.getAttribute('Method') === BEARER,
  );
  const data = bearer && childElement(bearer, NS.assertion, 'SubjectConfirmationData');
  const confirmation = time(data?.getAttribute('NotOnOrAfter'));
  if (Number.isNaN(confirmation)) return null;
  const conditions = time(childElement(assertion, NS.assertion, 'Conditions')?.getAttribute('NotOnOrAfter'));
  return new Date(Math.max(confirmation, Number.isNaN(conditions) ? 0 : conditions) + skewMs);
}

function parseTime(value: string | null): Date | null {
  if (!value) return null;
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) refuse('malformed', `not a time: ${value}`);
  return time;
}
