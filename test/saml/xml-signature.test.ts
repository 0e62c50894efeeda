import { DOMParser } from '@xmldom/xmldom';
import samlify from 'samlify';
import { describe, expect, it } from 'vitest';
import type { SamlConnection } from '../../src/saml/connections.ts';
import { identityProvider } from '../../src/saml/service-provider.ts';
import { verifyXmlSignature } from '../../src/saml/xml-signature.ts';
import {
  IDP_ENTITY_ID,
  IDP_SSO_URL,
  encryptAssertion,
  makeIdpKeys,
  responseXml,
  signAssertion,
  signResponse,
} from './support/idp.ts';

/**
 * verifyXmlSignature answers exactly what samlify's SamlLib.verifySignature (which it replaced
 * on the ACS) answers, or throws the same error, for good, forged and wrapped responses.
 */
const idp = makeIdpKeys('parity-idp');
const other = makeIdpKeys('other-idp');
const sp = makeIdpKeys('parity-sp');
const site = {
  acsUrl: 'https://sp.example.test/saml/acme/acs',
  audience: 'https://sp.example.test/saml/acme/metadata',
};
const plain = () => responseXml({ ...site, nameId: 'alice@example.com' });
const connection = { idpEntityId: IDP_ENTITY_ID, ssoUrl: IDP_SSO_URL } as SamlConnection;

function outcome(run: () => [boolean, string | null]): unknown {
  try {
    return { answer: run() };
  } catch (error) {
    return { thrown: (error as Error).message };
  }
}

function expectParity(xml: string, certificate = idp.certificate) {
  const ours = outcome(() => verifyXmlSignature(new DOMParser().parseFromString(xml, 'text/xml'), certificate));
  const samlifys = outcome(() =>
    samlify.SamlLib.verifySignature(xml, {
      metadata: identityProvider(connection, certificate).entityMeta,
      signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    }),
  );
  expect(ours).toEqual(samlifys);
  return ours;
}

describe('XML signature verification', () => {
  it('answers the signed assertion, whether the assertion or the response is signed', () => {
    const byAssertion = expectParity(signAssertion(plain(), idp)) as { answer: [boolean, string] };
    expect(byAssertion.answer[0]).toBe(true);
    expect(byAssertion.answer[1]).toMatch(/^<saml:Assertion /);
    expect(expectParity(signResponse(plain(), idp))).toMatchObject({ answer: [true, expect.any(String)] });
    expect(expectParity(signResponse(signAssertion(plain(), idp), idp))).toMatchObject({
      answer: [true, expect.any(String)],
    });
  });

  it('answers the signed response around an encrypted assertion', () => {
    const xml = signResponse(encryptAssertion(signAssertion(plain(), idp), sp.certificatePem), idp);
    expect(expectParity(xml)).toMatchObject({ answer: [true, expect.stringContaining('EncryptedAssertion')] });
  });

  it('refuses a certificate other than the trusted one, with or without it in KeyInfo', () => {
    expect(expectParity(signAssertion(plain(), other))).toMatchObject({ thrown: expect.stringContaining('UNMATCH') });
    const withoutKeyInfo = signAssertion(plain(), other).replace(/<ds:KeyInfo>.*?<\/ds:KeyInfo>/, '');
    expect(expectParity(withoutKeyInfo)).toMatchObject({ thrown: expect.stringContaining('invalid signature') });
    expect(expectParity(signAssertion(plain(), idp).replace(/<ds:KeyInfo>.*?<\/ds:KeyInfo>/, ''))).toMatchObject({
      answer: [true, expect.any(String)],
    });
  });

  it('refuses what was changed after signing', () => {
    const tampered = signAssertion(plain(), idp).replace(
      'alice@example.com</saml:NameID>',
      'mallory@example.com</saml:NameID>',
    );
    expect(expectParity(tampered)).toEqual({ answer: [false, null] });
  });

  it('answers nothing for an unsigned response', () => {
    expect(expectParity(plain())).toEqual({ answer: [false, null] });
  });

  it('refuses an assertion or a signature hidden in SubjectConfirmationData', () => {
    const signed = signAssertion(plain(), idp);
    const assertion = /<saml:Assertion[\s\S]*<\/saml:Assertion>/.exec(signed)![0];
    const hidden = signed.replace(
      /(<saml:SubjectConfirmationData[^>]*?)\/>/,
      `$1>${assertion}</saml:SubjectConfirmationData>`,
    );
    expect(hidden).not.toBe(signed);
    expect(expectParity(hidden)).toMatchObject({ thrown: 'ERR_POTENTIAL_WRAPPING_ATTACK' });
  });
});
