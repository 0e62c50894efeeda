import crypto from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { openSealedSecret, sealSecret } from '../core/secrets.ts';
import type { Db } from '../storage/database.ts';

const generateRsaKeyPair = promisify(crypto.generateKeyPair);
const signWithKey = promisify(crypto.sign);

export interface SpKeyPair {
  /** PEM certificate, published in the SP metadata for signing and encryption. */
  certificate: string;
  /** PEM private key (PKCS#8); stored sealed. */
  privateKey: string;
}

/** The organization's SP key pair, made on first use (a self-signed certificate valid 10 years). */
export async function spKeyPair(
  db: Db,
  serverSecret: string,
  organizationId: string,
  commonName: string,
): Promise<SpKeyPair> {
  const [existing] = await db<{ certificate: string; privateKeySealed: string }[]>`
    select certificate, private_key_sealed from saml_sp_keys where organization_id = ${organizationId}`;
  if (existing)
    return { certificate: existing.certificate, privateKey: openSealedSecret(existing.privateKeySealed, serverSecret) };
  const made = await makeSelfSignedPair(commonName);
  // Two instances may race on the first use: the first insert wins and both read it back.
  await db`
    insert into saml_sp_keys (organization_id, certificate, private_key_sealed)
    values (${organizationId}, ${made.certificate}, ${sealSecret(made.privateKey, serverSecret)})
    on conflict (organization_id) do nothing`;
  return spKeyPair(db, serverSecret, organizationId, commonName);
}

/**
 * The key is made and the certificate signed off the event loop (libuv's thread pool): an RSA key
 * takes 50 to 500 ms, and node-forge's own RSA signature, in JavaScript, held the event loop for
 * 30 ms or more. node-forge only lays out the certificate.
 */
async function makeSelfSignedPair(commonName: string): Promise<SpKeyPair> {
  const { publicKey, privateKey } = await generateRsaKeyPair('rsa', { modulusLength: 2048 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicPem);
  cert.serialNumber = `01${crypto.randomBytes(15).toString('hex')}`;
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 86_400_000);
  const subject = [
    { name: 'commonName', value: commonName.slice(0, 64) },
    { name: 'organizationName', value: 'orgsync' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.signatureOid = cert.siginfo.algorithmOid = forge.pki.oids.sha256WithRSAEncryption!;
  cert.tbsCertificate = toBeSignedPart(cert);
  const toBeSigned = Buffer.from(forge.asn1.toDer(cert.tbsCertificate).getBytes(), 'binary');
  cert.signature = (await signWithKey('sha256', toBeSigned, privateKey)).toString('binary');
  return { certificate: forge.pki.certificateToPem(cert), privateKey: privatePem };
}

/** node-forge's TBSCertificate of a certificate (public in node-forge, missing from its types). */
const toBeSignedPart = (cert: forge.pki.Certificate): forge.asn1.Asn1 =>
  (forge.pki as unknown as { getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
