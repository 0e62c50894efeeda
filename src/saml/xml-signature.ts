import crypto from 'node:crypto';
import { DOMParser, XMLSerializer } from '@xmldom/xmldom';
import { SignedXml } from 'xml-crypto';
import { remember } from './bounded-cache.ts';
import { allElements } from './xml.ts';

/**
 * XML signature verification of a SAML Response, as samlify's `SamlLib.verifySignature` does it
 * (the same wrapping defence, signature selection, certificate matching and xml-crypto check,
 * with the same error messages), without its per-call costs: it walks the DOM instead of
 * evaluating XPath, keeps each certificate's public key instead of parsing it per post, and
 * needs no IdP entity built from metadata.
 *
 * Answers whether a signature verified with `certificate` and the XML of what it covers: the
 * assertion (the Response's only Assertion child when the Response is signed), or the whole
 * signed Response when it holds an encrypted assertion; null when it covers neither.
 */
export function verifyXmlSignature(doc: Document, certificate: string): [boolean, string | null] {
  const root = doc.documentElement;
  // Absolute paths, by local name, as samlify's XPaths: the signatures of the message and of its
  // assertions, and (refused) any assertion or signature inside a SubjectConfirmationData.
  const rootIsMessage = root.localName.includes('Response') || root.localName.includes('Request');
  const assertions = rootIsMessage ? children(root, 'Assertion') : [];
  if (root.localName.includes('Response') && assertions.some(hidesAssertionOrSignature))
    throw new Error('ERR_POTENTIAL_WRAPPING_ATTACK');
  const selection = rootIsMessage
    ? [...children(root, 'Signature'), ...assertions.flatMap((a) => children(a, 'Signature'))]
    : [];
  if (selection.length === 0) return [false, null];

  const trusted = normalizeCertificate(certificate);
  for (const signatureNode of selection) {
    const declared = firstDescendant(signatureNode, 'X509Certificate');
    let keyCertificate = trusted;
    if (declared) {
      keyCertificate = normalizeCertificate(declared.textContent ?? '');
      if (trusted.trim() !== keyCertificate.trim())
        throw new Error('ERROR_UNMATCH_CERTIFICATE_DECLARATION_IN_METADATA');
    }
    const publicKey = publicKeyOf(keyCertificate);
    const sig = new SignedXml();
    sig.signatureAlgorithm = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
    sig.referencesAtCheck = true; // checkSignature below loads them (patches/xml-crypto+6.3.2.patch)
    sig.loadSignature(signatureNode);
    sig.publicCert = TAKES_KEY_OBJECT.has(sig.signatureAlgorithm ?? '') ? publicKey.key : publicKey.pem;
    // The parsed document itself: xml-crypto (patches/xml-crypto+6.3.2.patch) checks it as it would
    // check a copy parsed from its text, without serializing and parsing the message again.
    if (!sig.checkSignature(doc)) continue;
    const [signedXml] = sig.getSignedReferences();
    if (signedXml === undefined) throw new Error('NO_SIGNATURE_REFERENCES');
    // What a reference covers comes canonicalized: exclusive canonical XML of an element, no
    // declaration before its start tag. A signed Assertion's (the common case) is its XML as it
    // is; parsing and serializing it again would cost a tenth of the verifier's time per sign-in.
    if (startTagLocalName(signedXml) === 'Assertion') return [true, signedXml];
    const signed = new DOMParser().parseFromString(signedXml, 'text/xml').documentElement;
    if (signed.localName === 'Response') {
      const signedAssertions = children(signed, 'Assertion');
      if (signedAssertions.length === 1) return [true, xmlOf(signedAssertions[0]!)];
      if (children(signed, 'EncryptedAssertion').length >= 1) return [true, xmlOf(signed)];
      return [true, null];
    }
    return [true, signed.localName === 'Assertion' ? xmlOf(signed) : null];
  }
  return [false, null];
}

/** Assertion/Subject/SubjectConfirmation/SubjectConfirmationData//(Assertion | Signature). */
function hidesAssertionOrSignature(assertion: Element): boolean {
  return children(assertion, 'Subject')
    .flatMap((subject) => children(subject, 'SubjectConfirmation'))
    .flatMap((confirmation) => children(confirmation, 'SubjectConfirmationData'))
    .some((data) => {
      for (const element of allElements(data)) {
        if (element !== data && (element.localName === 'Assertion' || element.localName === 'Signature')) return true;
      }
      return false;
    });
}

const xmlOf = (node: Node) => new XMLSerializer().serializeToString(node);

/** The local name of the element whose start tag `xml` begins with, if it begins with one. */
function startTagLocalName(xml: string): string | undefined {
  const name = /^<([A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?)[\s/>]/.exec(xml)?.[1];
  return name?.slice(name.indexOf(':') + 1);
}

function children(parent: Element, localName: string): Element[] {
  const found: Element[] = [];
  for (let node = parent.firstChild; node; node = node.nextSibling)
    if (node.nodeType === 1 && (node as Element).localName === localName) found.push(node as Element);
  return found;
}

function firstDescendant(root: Element, localName: string): Element | null {
  for (const element of allElements(root)) if (element !== root && element.localName === localName) return element;
  return null;
}

/** A certificate's base64 body, as samlify compares them. */
function normalizeCertificate(text: string): string {
  return text
    .replace(/[\n\r]/g, '')
    .replace('-----BEGIN CERTIFICATE-----', '')
    .replace('-----END CERTIFICATE-----', '')
    .replace(/[ \t]/g, '');
}

/** Public keys by certificate; only configured certificates get here (bounded by them). */
const publicKeys = new Map<string, { pem: string; key: crypto.KeyObject }>();
const PUBLIC_KEY_LIMIT = 1_000;

/**
 * xml-crypto's verifiers of these algorithms hand the key to node:crypto's verify as they get it,
 * so the key parsed once does what its PEM does, without node parsing the PEM on every check (about
 * 0.2 ms). RSA-PSS's verifier refuses a KeyObject, so every other algorithm gets the PEM.
 */
const TAKES_KEY_OBJECT = new Set([
  'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512',
]);

function publicKeyOf(certificate: string): { pem: string; key: crypto.KeyObject } {
  const known = publicKeys.get(certificate);
  if (known !== undefined) return known;
  const key = new crypto.X509Certificate(Buffer.from(certificate, 'base64')).publicKey;
  return remember(
    publicKeys,
    certificate,
    { pem: key.export({ type: 'spki', format: 'pem' }).toString(), key },
    PUBLIC_KEY_LIMIT,
  );
}
