import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

/**
 * A test IdP that is not samlify: keys made by openssl, responses written by hand and signed by
 * Debian's xmlsec1. Crafted (and deliberately broken) responses come from here.
 */

export interface IdpKeys {
  dir: string;
  keyFile: string;
  certFile: string;
  /** Base64 DER, as it appears in metadata. */
  certificate: string;
}

/** A fresh RSA key and self-signed certificate made by openssl. */
export function makeIdpKeys(name = 'test-idp'): IdpKeys {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orgsync-saml-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-sha256',
      '-days',
      '30',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    {
      stdio: 'ignore',
    },
  );
  const pem = fs.readFileSync(certFile, 'utf8');
  return { dir, keyFile, certFile, certificate: pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s+/g, '') };
}

export const IDP_ENTITY_ID = 'https://idp.example.test/metadata';
export const IDP_SSO_URL = 'https://idp.example.test/sso';

export interface ResponseOptions {
  acsUrl: string;
  audience: string;
  nameId?: string;
  /** Raw XML for the NameID content (to put a comment inside). */
  nameIdXml?: string;
  attributes?: Record<string, string[]>;
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
}

const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
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
        `<saml:Attribute Name="${esc(name)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">${values
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
    `<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">${o.nameIdXml ?? esc(o.nameId ?? 'alice@example.com')}</saml:NameID>` +
    `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData${inResponseTo} Recipient="${esc(o.recipient ?? o.acsUrl)}" NotOnOrAfter="${iso(o.confirmationNotOnOrAfter ?? new Date(now + 5 * 60_000))}"/></saml:SubjectConfirmation></saml:Subject>` +
    `<saml:Conditions NotBefore="${iso(o.notBefore ?? new Date(now - 60_000))}" NotOnOrAfter="${iso(o.notOnOrAfter ?? new Date(now + 5 * 60_000))}"><saml:AudienceRestriction><saml:Audience>${esc(o.audience)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
    `<saml:AuthnStatement AuthnInstant="${iso(new Date(now))}" SessionIndex="${newId()}"${o.sessionNotOnOrAfter ? ` SessionNotOnOrAfter="${iso(o.sessionNotOnOrAfter)}"` : ''}><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
    `<saml:AttributeStatement>${attributes}</saml:AttributeStatement>` +
    `</saml:Assertion></samlp:Response>`
  );
}

/** `sha1`: RSA-SHA1 with a SHA-1 digest; `sha1-digest`: an RSA-SHA256 signature over a SHA-1 digest. */
export type Algorithm = 'sha256' | 'sha1' | 'sha1-digest';

function signatureTemplate(referenceId: string, algorithm: Algorithm): string {
  const method =
    algorithm === 'sha1'
      ? 'http://www.w3.org/2000/09/xmldsig#rsa-sha1'
      : 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
  const digest =
    algorithm === 'sha256' ? 'http://www.w3.org/2001/04/xmlenc#sha256' : 'http://www.w3.org/2000/09/xmldsig#sha1';
  return (
    `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>` +
    `<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>` +
    `<ds:SignatureMethod Algorithm="${method}"/>` +
    `<ds:Reference URI="#${referenceId}"><ds:Transforms>` +
    `<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>` +
    `<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>` +
    `<ds:DigestMethod Algorithm="${digest}"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo>` +
    `<ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>`
  );
}

/** Signs the first (template) signature in the document with xmlsec1. */
function xmlsecSign(xml: string, keys: IdpKeys): string {
  const input = path.join(keys.dir, `${crypto.randomUUID()}.xml`);
  fs.writeFileSync(input, xml);
  try {
    return execFileSync(
      'xmlsec1',
      [
        '--sign',
        '--privkey-pem',
        `${keys.keyFile},${keys.certFile}`,
        '--id-attr:ID',
        'urn:oasis:names:tc:SAML:2.0:assertion:Assertion',
        '--id-attr:ID',
        'urn:oasis:names:tc:SAML:2.0:protocol:Response',
        '--output',
        '-',
        input,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } finally {
    fs.rmSync(input, { force: true });
  }
}

/** Puts a signature template right after the Issuer of the element with that ID, then signs. */
function signElement(
  xml: string,
  elementTag: 'samlp:Response' | 'saml:Assertion',
  keys: IdpKeys,
  algorithm: Algorithm,
): string {
  const open = new RegExp(`<${elementTag} [^>]*ID="([^"]+)"[^>]*>\\s*<saml:Issuer>[^<]*</saml:Issuer>`);
  const match = open.exec(xml);
  if (!match) throw new Error(`no ${elementTag} with an Issuer to sign`);
  const at = match.index + match[0].length;
  const withTemplate = xml.slice(0, at) + signatureTemplate(match[1]!, algorithm) + xml.slice(at);
  return xmlsecSign(withTemplate, keys).replace(/^<\?xml[^>]*\?>\s*/, '');
}

export function signAssertion(xml: string, keys: IdpKeys, algorithm: Algorithm = 'sha256'): string {
  return signElement(xml, 'saml:Assertion', keys, algorithm);
}

export function signResponse(xml: string, keys: IdpKeys, algorithm: Algorithm = 'sha256'): string {
  return signElement(xml, 'samlp:Response', keys, algorithm);
}

/** Content encryption algorithms xmlsec1 writes, with the session key each needs. */
export const CONTENT_ENCRYPTION = {
  'aes128-cbc': { uri: 'http://www.w3.org/2001/04/xmlenc#aes128-cbc', sessionKey: 'aes-128' },
  'aes192-cbc': { uri: 'http://www.w3.org/2001/04/xmlenc#aes192-cbc', sessionKey: 'aes-192' },
  'aes256-cbc': { uri: 'http://www.w3.org/2001/04/xmlenc#aes256-cbc', sessionKey: 'aes-256' },
  'aes128-gcm': { uri: 'http://www.w3.org/2009/xmlenc11#aes128-gcm', sessionKey: 'aes-128' },
  'aes256-gcm': { uri: 'http://www.w3.org/2009/xmlenc11#aes256-gcm', sessionKey: 'aes-256' },
  'tripledes-cbc': { uri: 'http://www.w3.org/2001/04/xmlenc#tripledes-cbc', sessionKey: 'des-192' },
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
 * Encrypts the (usually already signed) assertion of a response for the SP certificate with
 * xmlsec1 and a template: AES-256-CBC content (or another), the session key sent with RSA-OAEP
 * (or RSA 1.5).
 */
export function encryptAssertion(xml: string, certificatePem: string, o: EncryptionOptions = {}): string {
  const keyTransport = `http://www.w3.org/2001/04/xmlenc#${o.keyTransport ?? 'rsa-oaep-mgf1p'}`;
  const content = CONTENT_ENCRYPTION[o.content ?? 'aes256-cbc'];
  const digest = o.oaepDigest === 'sha1' ? '<ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/>' : '';
  const template =
    `<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Type="http://www.w3.org/2001/04/xmlenc#Element">` +
    `<xenc:EncryptionMethod Algorithm="${content.uri}"/>` +
    `<ds:KeyInfo><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="${keyTransport}">${digest}</xenc:EncryptionMethod>` +
    `<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>` +
    `<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>`;
  // The plaintext is the Assertion element alone: it declares the saml prefix itself (a redundant
  // declaration exclusive canonicalization ignores, so the signature still verifies).
  const wrapped = xml
    .replace(
      /<saml:Assertion /,
      '<saml:EncryptedAssertion><saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ',
    )
    .replace('</saml:Assertion>', '</saml:Assertion></saml:EncryptedAssertion>');
  if (wrapped === xml) throw new Error('no assertion to encrypt');
  const id = crypto.randomUUID();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orgsync-saml-enc-'));
  const files = {
    data: path.join(dir, `${id}.xml`),
    template: path.join(dir, `${id}.tmpl.xml`),
    cert: path.join(dir, `${id}.pem`),
  };
  fs.writeFileSync(files.data, wrapped);
  fs.writeFileSync(files.template, template);
  fs.writeFileSync(files.cert, certificatePem);
  try {
    return execFileSync(
      'xmlsec1',
      [
        '--encrypt',
        '--pubkey-cert-pem',
        files.cert,
        '--session-key',
        content.sessionKey,
        '--xml-data',
        files.data,
        '--node-xpath',
        "/*[local-name()='Response']/*[local-name()='EncryptedAssertion']/*[local-name()='Assertion']",
        '--output',
        '-',
        files.template,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    ).replace(/^<\?xml[^>]*\?>\s*/, '');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const encode = (xml: string) => Buffer.from(xml, 'utf8').toString('base64');

/** The ID of the AuthnRequest in an HTTP-Redirect URL. */
export function authnRequestOf(location: string): { id: string; xml: string; url: URL } {
  const url = new URL(location);
  const xml = zlib.inflateRawSync(Buffer.from(url.searchParams.get('SAMLRequest')!, 'base64')).toString('utf8');
  return { id: /\sID="([^"]+)"/.exec(xml)![1]!, xml, url };
}
