import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  CONTENT_ENCRYPTION,
  assertionToEncrypt,
  signaturePlace,
  type ContentEncryption,
  type IdpKeys,
} from '../../saml/support/idp.ts';

/**
 * Debian's xmlsec1 (libxmlsec1, the C implementation most IdPs' toolkits wrap) as a second signer,
 * encryptor and verifier: what it writes must be accepted by orgsync, and what the TypeScript test
 * IdP writes must pass its checks.
 */

const ID_ATTRIBUTES = [
  '--id-attr:ID',
  'urn:oasis:names:tc:SAML:2.0:assertion:Assertion',
  '--id-attr:ID',
  'urn:oasis:names:tc:SAML:2.0:protocol:Response',
];

/** Runs xmlsec1 on the XML (written to a file in the keys' directory) and answers its output. */
export function xmlsec1(args: string[], xml: string, dir: string): string {
  const input = path.join(dir, `${crypto.randomUUID()}.xml`);
  fs.writeFileSync(input, xml);
  try {
    return execFileSync('xmlsec1', [...args, input], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).replace(
      /^<\?xml[^>]*\?>\s*/,
      '',
    );
  } finally {
    fs.rmSync(input, { force: true });
  }
}

const TEMPLATE = (referenceId: string) =>
  `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>` +
  `<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>` +
  `<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>` +
  `<ds:Reference URI="#${referenceId}"><ds:Transforms>` +
  `<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>` +
  `<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>` +
  `<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo>` +
  `<ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>`;

/** xmlsec1 signs the element (RSA-SHA256, SHA-256 digest) from a template right after its Issuer. */
export function xmlsecSign(xml: string, element: 'Response' | 'Assertion', keys: IdpKeys): string {
  const { id, at } = signaturePlace(xml, element);
  return xmlsec1(
    ['--sign', '--privkey-pem', `${keys.keyFile},${keys.certFile}`, ...ID_ATTRIBUTES, '--output', '-'],
    xml.slice(0, at) + TEMPLATE(id) + xml.slice(at),
    keys.dir,
  );
}

/** xmlsec1 verifies every signature of the document with that certificate (throws when one fails). */
export function xmlsecVerify(xml: string, keys: IdpKeys): void {
  xmlsec1(['--verify', '--pubkey-cert-pem', keys.certFile, ...ID_ATTRIBUTES], xml, keys.dir);
}

/** xmlsec1 decrypts the EncryptedData with the private key and answers the document. */
export function xmlsecDecrypt(xml: string, keys: IdpKeys): string {
  return xmlsec1(['--decrypt', '--privkey-pem', keys.keyFile, '--output', '-'], xml, keys.dir);
}

/** xmlsec1 encrypts the assertion for the SP certificate: the content algorithm's session key, RSA-OAEP. */
export function xmlsecEncrypt(xml: string, certificatePem: string, dir: string, content: ContentEncryption): string {
  const { plaintext, replace } = assertionToEncrypt(xml);
  const template =
    `<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Type="http://www.w3.org/2001/04/xmlenc#Element">` +
    `<xenc:EncryptionMethod Algorithm="${CONTENT_ENCRYPTION[content].uri}"/>` +
    `<ds:KeyInfo><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/>` +
    `<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>` +
    `<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>`;
  const files = {
    data: path.join(dir, `${crypto.randomUUID()}.xml`),
    cert: path.join(dir, `${crypto.randomUUID()}.pem`),
  };
  fs.writeFileSync(files.data, plaintext);
  fs.writeFileSync(files.cert, certificatePem);
  try {
    const encrypted = xmlsec1(
      [
        '--encrypt',
        '--pubkey-cert-pem',
        files.cert,
        '--session-key',
        CONTENT_ENCRYPTION[content].sessionKey,
        '--xml-data',
        files.data,
        '--output',
        '-',
      ],
      template,
      dir,
    );
    return replace(encrypted);
  } finally {
    fs.rmSync(files.data, { force: true });
    fs.rmSync(files.cert, { force: true });
  }
}
