import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { DOMParser } from '@xmldom/xmldom';
import forge from 'node-forge';
import { XmlDsigEnvelopedSignatureTransform, XmlDsigExcC14NTransform } from 'xmldsigjs';

/**
 * A test IdP in TypeScript that shares no code with what orgsync verifies with (samlify,
 * xml-crypto, xml-encryption): responses written by hand, canonicalized by xmldsigjs, signed and
 * encrypted with node:crypto, keys certified by node-forge. (xmldsigjs's own SignedXml signs
 * through WebCrypto, asynchronously; the tests build responses synchronously, and need signatures
 * placed and bent as no signing API offers.) Crafted (and deliberately broken or weak) responses
 * come from here; test/saml/test-idp.test.ts verifies its signatures with xmldsigjs, and
 * `test/interop/` checks it against xmlsec1.
 */

export interface IdpKeys {
  /** A directory with the key and certificate files (written on first use), for tools that read files. */
  dir: string;
  keyFile: string;
  certFile: string;
  /** Base64 DER, as it appears in metadata. */
  certificate: string;
  certificatePem: string;
  privateKey: crypto.KeyObject;
}

/** A fresh RSA key and a self-signed certificate for it (CN=name, valid 30 days). */
export function makeIdpKeys(name = 'test-idp'): IdpKeys {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  cert.serialNumber = `01${crypto.randomBytes(8).toString('hex')}`;
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 30 * 24 * 3600_000);
  cert.setSubject([{ name: 'commonName', value: name }]);
  cert.setIssuer([{ name: 'commonName', value: name }]);
  const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  cert.sign(forge.pki.privateKeyFromPem(pkcs1), forge.md.sha256.create());
  const certPem = forge.pki.certificateToPem(cert);

  // The files are written only when a tool needs them (the interop tier, one refusal test): the
  // test runner ends its worker processes without an 'exit' event, so every folder made is left
  // behind in the temporary directory.
  let dir: string | undefined;
  const files = () => {
    if (!dir) {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orgsync-saml-'));
      fs.writeFileSync(path.join(dir, 'key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
      fs.writeFileSync(path.join(dir, 'cert.pem'), certPem);
    }
    return dir;
  };
  return {
    get dir() {
      return files();
    },
    get keyFile() {
      return path.join(files(), 'key.pem');
    },
    get certFile() {
      return path.join(files(), 'cert.pem');
    },
    certificate: pemBody(certPem),
    certificatePem: certPem,
    privateKey,
  };
}

/** The base64 body of a PEM certificate (as metadata and KeyInfo carry it). */
export const pemBody = (pem: string) => pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s+/g, '');

export const IDP_ENTITY_ID = 'https://idp.example.test/metadata';
export const IDP_SSO_URL = 'https://idp.example.test/sso';

const NAMEID_EMAIL = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';
const ATTRNAME_BASIC = 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic';

export interface ResponseOptions {
  acsUrl: string;
  audience: string;
  nameId?: string;
  /** The NameID Format; emailAddress by default. */
  nameIdFormat?: string;
  /** Raw XML for the NameID content (to put a comment inside). */
  nameIdXml?: string;
  attributes?: Record<string, string[]>;
  /** The NameFormat of every Attribute; basic by default. */
  attributeNameFormat?: string;
  issuer?: string;
  assertionIssuer?: string;
  destination?: string | null;
  recipient?: string;
  inResponseTo?: string | null;
  notBefore?: Date;
  notOnOrAfter?: Date;
  confirmationNotOnOrAfter?: Date;
  status?: string;
  sessionNotOnOrAfter?: Date;
  responseId?: string;
  assertionId?: string;
  authnContextClassRef?: string;
}

const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
export const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
export const newId = () => `_${crypto.randomBytes(16).toString('hex')}`;

/** An unsigned SAML Response with one assertion; every field can be bent by a test. */
export function responseXml(o: ResponseOptions): string {
  const now = Date.now();
  const issuer = o.issuer ?? IDP_ENTITY_ID;
  const responseId = o.responseId ?? newId();
  const assertionId = o.assertionId ?? newId();
  const inResponseTo = o.inResponseTo ? ` InResponseTo="${esc(o.inResponseTo)}"` : '';
  const destination = o.destination === null ? '' : ` Destination="${esc(o.destination ?? o.acsUrl)}"`;
  const attributes = Object.entries(o.attributes ?? { email: [o.nameId ?? 'alice@example.com'] })
    .map(
      ([name, values]) =>
        `<saml:Attribute Name="${esc(name)}" NameFormat="${o.attributeNameFormat ?? ATTRNAME_BASIC}">${values
          .map(
            (v) =>
              `<saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">${esc(v)}</saml:AttributeValue>`,
          )
          .join('')}</saml:Attribute>`,
    )
    .join('');
  return (
    `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${responseId}" Version="2.0" IssueInstant="${iso(new Date(now))}"${destination}${inResponseTo}>` +
    `<saml:Issuer>${esc(issuer)}</saml:Issuer>` +
    `<samlp:Status><samlp:StatusCode Value="${o.status ?? 'urn:oasis:names:tc:SAML:2.0:status:Success'}"/></samlp:Status>` +
    `<saml:Assertion ID="${assertionId}" Version="2.0" IssueInstant="${iso(new Date(now))}">` +
    `<saml:Issuer>${esc(o.assertionIssuer ?? issuer)}</saml:Issuer>` +
    `<saml:Subject><saml:NameID Format="${o.nameIdFormat ?? NAMEID_EMAIL}">${o.nameIdXml ?? esc(o.nameId ?? 'alice@example.com')}</saml:NameID>` +
    `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData${inResponseTo} Recipient="${esc(o.recipient ?? o.acsUrl)}" NotOnOrAfter="${iso(o.confirmationNotOnOrAfter ?? new Date(now + 5 * 60_000))}"/></saml:SubjectConfirmation></saml:Subject>` +
    `<saml:Conditions NotBefore="${iso(o.notBefore ?? new Date(now - 60_000))}" NotOnOrAfter="${iso(o.notOnOrAfter ?? new Date(now + 5 * 60_000))}"><saml:AudienceRestriction><saml:Audience>${esc(o.audience)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
    `<saml:AuthnStatement AuthnInstant="${iso(new Date(now))}" SessionIndex="${newId()}"${o.sessionNotOnOrAfter ? ` SessionNotOnOrAfter="${iso(o.sessionNotOnOrAfter)}"` : ''}><saml:AuthnContext><saml:AuthnContextClassRef>${o.authnContextClassRef ?? 'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport'}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
    (attributes ? `<saml:AttributeStatement>${attributes}</saml:AttributeStatement>` : '') +
    `</saml:Assertion></samlp:Response>`
  );
}

/** `sha1`: RSA-SHA1 with a SHA-1 digest; `sha1-digest`: an RSA-SHA256 signature over a SHA-1 digest. */
export type Algorithm = 'sha256' | 'sha1' | 'sha1-digest';

const DSIG = 'http://www.w3.org/2000/09/xmldsig#';
const SAML_ASSERTION = 'urn:oasis:names:tc:SAML:2.0:assertion';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const SIGNATURE_METHODS = {
  sha256: { uri: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256', hash: 'sha256' },
  sha1: { uri: 'http://www.w3.org/2000/09/xmldsig#rsa-sha1', hash: 'sha1' },
} as const;
const DIGEST_METHODS = {
  sha256: { uri: 'http://www.w3.org/2001/04/xmlenc#sha256', hash: 'sha256' },
  sha1: { uri: 'http://www.w3.org/2000/09/xmldsig#sha1', hash: 'sha1' },
} as const;

/**
 * The element to sign (a Response or an Assertion, whatever its namespace prefix) and where its
 * signature goes: right after its Issuer, as the schema wants.
 */
export function signaturePlace(xml: string, element: 'Response' | 'Assertion'): { id: string; at: number } {
  const open = new RegExp(
    `<(?:[\\w-]+:)?${element}\\s[^>]*?\\bID="([^"]+)"[^>]*>\\s*<(?:[\\w-]+:)?Issuer\\b[^>]*>[^<]*</(?:[\\w-]+:)?Issuer>`,
  );
  const match = open.exec(xml);
  if (!match) throw new Error(`no ${element} with an Issuer to sign`);
  return { id: match[1]!, at: match.index + match[0].length };
}

const parse = (xml: string) => new DOMParser().parseFromString(xml, 'application/xml');

/** Exclusive canonical XML (without comments) of an element, by xmldsigjs. */
function excC14n(element: Element, enveloped = false): string {
  let node = element;
  if (enveloped) {
    const transform = new XmlDsigEnvelopedSignatureTransform();
    transform.LoadInnerXml(node);
    node = transform.GetOutput() as Element;
  }
  const c14n = new XmlDsigExcC14NTransform();
  c14n.LoadInnerXml(node);
  return c14n.GetOutput();
}

function elementById(doc: Document, id: string): Element {
  const all = doc.getElementsByTagName('*');
  for (let i = 0; i < all.length; i++) if (all.item(i)!.getAttribute('ID') === id) return all.item(i)!;
  throw new Error(`no element with ID ${id}`);
}

/**
 * An enveloped XML-DSig signature of the element with that ID (exclusive canonicalization,
 * RSA with the algorithm's hashes), with the certificate in KeyInfo, as an IdP writes it.
 */
function signatureOf(xml: string, id: string, keys: IdpKeys, algorithm: Algorithm): string {
  const signatureMethod = SIGNATURE_METHODS[algorithm === 'sha1' ? 'sha1' : 'sha256'];
  const digestMethod = DIGEST_METHODS[algorithm === 'sha256' ? 'sha256' : 'sha1'];
  // The element as it is in the document, so its namespace context comes along. This signature
  // is not in it yet: the digest is of what a verifier sees once the enveloped-signature
  // transform has taken it out again (a signature deeper inside, the assertion's, stays).
  const digest = crypto
    .createHash(digestMethod.hash)
    .update(excC14n(elementById(parse(xml), id), true))
    .digest('base64');
  const signedInfo =
    `<ds:SignedInfo><ds:CanonicalizationMethod Algorithm="${EXC_C14N}"/>` +
    `<ds:SignatureMethod Algorithm="${signatureMethod.uri}"/>` +
    `<ds:Reference URI="#${id}"><ds:Transforms>` +
    `<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>` +
    `<ds:Transform Algorithm="${EXC_C14N}"/></ds:Transforms>` +
    `<ds:DigestMethod Algorithm="${digestMethod.uri}"/><ds:DigestValue>${digest}</ds:DigestValue></ds:Reference></ds:SignedInfo>`;
  const canonicalSignedInfo = excC14n(
    parse(`<ds:Signature xmlns:ds="${DSIG}">${signedInfo}</ds:Signature>`).documentElement.firstChild as Element,
  );
  const value = crypto.sign(signatureMethod.hash, Buffer.from(canonicalSignedInfo, 'utf8'), keys.privateKey);
  return (
    `<ds:Signature xmlns:ds="${DSIG}">${signedInfo}<ds:SignatureValue>${value.toString('base64')}</ds:SignatureValue>` +
    `<ds:KeyInfo><ds:X509Data><ds:X509Certificate>${keys.certificate}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>`
  );
}

function signElement(xml: string, element: 'Response' | 'Assertion', keys: IdpKeys, algorithm: Algorithm): string {
  const { id, at } = signaturePlace(xml, element);
  return xml.slice(0, at) + signatureOf(xml, id, keys, algorithm) + xml.slice(at);
}

/**
 * A signature of the element with that ID placed at `at` (an offset into `xml`), wherever that is:
 * for signatures of another element than the one they sit in.
 */
export function signElementWithId(xml: string, id: string, at: number, keys: IdpKeys): string {
  return xml.slice(0, at) + signatureOf(xml, id, keys, 'sha256') + xml.slice(at);
}

export function signAssertion(xml: string, keys: IdpKeys, algorithm: Algorithm = 'sha256'): string {
  return signElement(xml, 'Assertion', keys, algorithm);
}

export function signResponse(xml: string, keys: IdpKeys, algorithm: Algorithm = 'sha256'): string {
  return signElement(xml, 'Response', keys, algorithm);
}

/**
 * Content encryption algorithms: the URI, node's cipher and its IV length, and the session key
 * name xmlsec1 gives it (for the interop tier).
 */
export const CONTENT_ENCRYPTION = {
  'aes128-cbc': {
    uri: 'http://www.w3.org/2001/04/xmlenc#aes128-cbc',
    cipher: 'aes-128-cbc',
    iv: 16,
    sessionKey: 'aes-128',
  },
  'aes192-cbc': {
    uri: 'http://www.w3.org/2001/04/xmlenc#aes192-cbc',
    cipher: 'aes-192-cbc',
    iv: 16,
    sessionKey: 'aes-192',
  },
  'aes256-cbc': {
    uri: 'http://www.w3.org/2001/04/xmlenc#aes256-cbc',
    cipher: 'aes-256-cbc',
    iv: 16,
    sessionKey: 'aes-256',
  },
  'aes128-gcm': {
    uri: 'http://www.w3.org/2009/xmlenc11#aes128-gcm',
    cipher: 'aes-128-gcm',
    iv: 12,
    sessionKey: 'aes-128',
  },
  'aes256-gcm': {
    uri: 'http://www.w3.org/2009/xmlenc11#aes256-gcm',
    cipher: 'aes-256-gcm',
    iv: 12,
    sessionKey: 'aes-256',
  },
  'tripledes-cbc': {
    uri: 'http://www.w3.org/2001/04/xmlenc#tripledes-cbc',
    cipher: 'des-ede3-cbc',
    iv: 8,
    sessionKey: 'des-192',
  },
} as const;
export type ContentEncryption = keyof typeof CONTENT_ENCRYPTION;

export interface EncryptionOptions {
  /** Content (EncryptedData) encryption; `aes256-cbc` by default. */
  content?: ContentEncryption;
  /** Key transport; `rsa-oaep-mgf1p` by default. */
  keyTransport?: 'rsa-oaep-mgf1p' | 'rsa-1_5';
  /**
   * The OAEP digest written as a ds:DigestMethod inside the key transport EncryptionMethod, as
   * ADFS, Okta and Shibboleth write it (`sha1`, the only one rsa-oaep-mgf1p defines); none by default.
   */
  oaepDigest?: 'sha1';
}

/**
 * The assertion to encrypt: the Assertion element alone, declaring its namespace itself (a
 * redundant declaration exclusive canonicalization ignores, so its signature still verifies), and
 * a function that puts the EncryptedData in its place inside an EncryptedAssertion.
 */
export function assertionToEncrypt(xml: string): { plaintext: string; replace: (encryptedData: string) => string } {
  const open = /<(?:([\w-]+):)?Assertion[\s>]/.exec(xml);
  if (!open) throw new Error('no assertion to encrypt');
  const prefix = open[1] ?? '';
  const tag = prefix ? `${prefix}:` : '';
  const declaration = `xmlns${prefix ? `:${prefix}` : ''}="${SAML_ASSERTION}"`;
  const close = `</${tag}Assertion>`;
  const start = open.index;
  const end = xml.indexOf(close, start) + close.length;
  const startTag = xml.slice(start, xml.indexOf('>', start));
  const element = xml.slice(start, end);
  const plaintext = startTag.includes(declaration)
    ? element
    : element.replace(`<${tag}Assertion`, `<${tag}Assertion ${declaration}`);
  // The EncryptedAssertion needs its prefix in scope: declared on the Response, or here.
  const inScope = xml.slice(0, xml.indexOf('>')).includes(declaration);
  return {
    plaintext,
    replace: (encryptedData) =>
      `${xml.slice(0, start)}<${tag}EncryptedAssertion${inScope ? '' : ` ${declaration}`}>${encryptedData}</${tag}EncryptedAssertion>${xml.slice(end)}`,
  };
}

/** XML Encryption's content encryption: IV, ciphertext (and the GCM tag), base64. */
function encryptContent(content: (typeof CONTENT_ENCRYPTION)[ContentEncryption], key: Buffer, plaintext: string) {
  const iv = crypto.randomBytes(content.iv);
  const cipher = crypto.createCipheriv(content.cipher, key, iv);
  const parts = [iv, cipher.update(plaintext, 'utf8'), cipher.final()];
  if (content.cipher.endsWith('-gcm')) parts.push((cipher as crypto.CipherGCM).getAuthTag());
  return Buffer.concat(parts).toString('base64');
}

/**
 * Encrypts the (usually already signed) assertion of a response for the SP certificate: AES-256-CBC
 * content (or another), the session key sent with RSA-OAEP (or RSA 1.5).
 */
export function encryptAssertion(xml: string, certificatePem: string, o: EncryptionOptions = {}): string {
  const { plaintext, replace } = assertionToEncrypt(xml);
  const content = CONTENT_ENCRYPTION[o.content ?? 'aes256-cbc'];
  const keyTransport = o.keyTransport ?? 'rsa-oaep-mgf1p';
  const sessionKey = crypto.randomBytes(crypto.getCipherInfo(content.cipher)!.keyLength);
  const encryptedKey = crypto.publicEncrypt(
    keyTransport === 'rsa-oaep-mgf1p'
      ? { key: certificatePem, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }
      : { key: certificatePem, padding: crypto.constants.RSA_PKCS1_PADDING },
    sessionKey,
  );
  const digest = o.oaepDigest === 'sha1' ? `<ds:DigestMethod Algorithm="${DSIG}sha1"/>` : '';
  return replace(
    `<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:ds="${DSIG}" Type="http://www.w3.org/2001/04/xmlenc#Element">` +
      `<xenc:EncryptionMethod Algorithm="${content.uri}"/>` +
      `<ds:KeyInfo><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#${keyTransport}">${digest}</xenc:EncryptionMethod>` +
      `<xenc:CipherData><xenc:CipherValue>${encryptedKey.toString('base64')}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>` +
      `<xenc:CipherData><xenc:CipherValue>${encryptContent(content, sessionKey, plaintext)}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>`,
  );
}

export const encode = (xml: string) => Buffer.from(xml, 'utf8').toString('base64');

/** The ID of the AuthnRequest in an HTTP-Redirect URL. */
export function authnRequestOf(location: string): { id: string; xml: string; url: URL } {
  const url = new URL(location);
  const xml = zlib.inflateRawSync(Buffer.from(url.searchParams.get('SAMLRequest')!, 'base64')).toString('utf8');
  return { id: /\sID="([^"]+)"/.exec(xml)![1]!, xml, url };
}
