import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONTENT_ENCRYPTION,
  encryptAssertion,
  makeIdpKeys,
  responseXml,
  signAssertion,
  signResponse,
  type ContentEncryption,
} from '../saml/support/idp.ts';
import { lastAttempt, postResponse, samlFixture, type SamlFixture } from '../saml/support/setup.ts';
import { xmlsecDecrypt, xmlsecEncrypt, xmlsecSign, xmlsecVerify } from './support/xmlsec.ts';

/**
 * Debian's xmlsec1 against orgsync and against the TypeScript test IdP: orgsync accepts what
 * xmlsec1 signs and encrypts, and xmlsec1 verifies and decrypts what the test IdP writes (so the
 * main suite's crafted responses are real XML-DSig and XML-Enc, not an agreement between two
 * pieces of our own code).
 */
let f: SamlFixture;
let spCertificate: string;
beforeAll(async () => {
  f = await samlFixture();
  spCertificate = (
    await request(f.app).get('/api/saml/service-provider').set('authorization', `Bearer ${f.adminKey}`).expect(200)
  ).body.certificate;
});
afterAll(async () => f.ctx.database.close());

const response = () => responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: 'owner@acme.test' });

async function expectAccepted(xml: string) {
  const res = await postResponse(f, xml);
  expect(res.status, res.text.slice(0, 500)).toBe(303);
  expect(await lastAttempt(f)).toMatchObject({ outcome: 'success', nameId: 'owner@acme.test' });
}

describe('orgsync accepts what xmlsec1 writes', () => {
  it('an assertion xmlsec1 signed', async () => {
    await expectAccepted(xmlsecSign(response(), 'Assertion', f.idp));
  });

  it('a Response xmlsec1 signed around an assertion it signed', async () => {
    await expectAccepted(xmlsecSign(xmlsecSign(response(), 'Assertion', f.idp), 'Response', f.idp));
  });

  it.each(['aes256-cbc', 'aes128-gcm'] as const)(
    'a signed assertion xmlsec1 encrypted for the SP key (%s, RSA-OAEP)',
    async (content) => {
      const xml = xmlsecEncrypt(xmlsecSign(response(), 'Assertion', f.idp), spCertificate, f.idp.dir, content);
      expect(xml).toContain(`Algorithm="${CONTENT_ENCRYPTION[content].uri}"`);
      expect(xml).not.toContain('owner@acme.test');
      await expectAccepted(xml);
    },
  );
});

describe('xmlsec1 accepts what the TypeScript test IdP writes', () => {
  it('verifies its assertion and Response signatures, and rejects a changed assertion', () => {
    const signedAssertion = signAssertion(response(), f.idp);
    xmlsecVerify(signedAssertion, f.idp);
    xmlsecVerify(signResponse(signedAssertion, f.idp), f.idp);
    expect(() => xmlsecVerify(signedAssertion.replace('owner@acme.test', 'evil@acme.test'), f.idp)).toThrow();
  });

  it.each(
    (Object.keys(CONTENT_ENCRYPTION) as ContentEncryption[]).flatMap((content) =>
      (['rsa-oaep-mgf1p', 'rsa-1_5'] as const).map((keyTransport) => [content, keyTransport] as const),
    ),
  )('decrypts its %s content with %s key transport', (content, keyTransport) => {
    const sp = makeIdpKeys('sp');
    const signed = signAssertion(response(), f.idp);
    const encrypted = encryptAssertion(signed, sp.certificatePem, { content, keyTransport, oaepDigest: 'sha1' });
    expect(encrypted).not.toContain('owner@acme.test');
    const decrypted = xmlsecDecrypt(encrypted, sp);
    expect(decrypted).toContain(signed.match(/<saml:Subject>[\s\S]*<\/saml:Subject>/)![0]);
    xmlsecVerify(decrypted, f.idp);
  });
});
