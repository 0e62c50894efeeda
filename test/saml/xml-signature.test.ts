import { DOMParser, XMLSerializer } from '@xmldom/xmldom';
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
  signElementWithId,
  signResponse,
  signaturePlace,
} from './support/idp.ts';

/**
 * verifyXmlSignature answers what samlify's SamlLib.verifySignature (which it replaced on the
 * ACS) answers, or throws the same error, for good, forged and wrapped responses. The signed XML
 * answered is the same document, though not always written alike: a signed assertion comes as
 * its canonical XML, which samlify parses and writes out again.
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
  expect(asWrittenByXmldom(ours)).toEqual(asWrittenByXmldom(samlifys));
  return ours;
}

function asWrittenByXmldom(result: unknown): unknown {
  const answer = (result as { answer?: [boolean, string | null] }).answer;
  if (!answer?.[1]) return result;
  const written = new XMLSerializer().serializeToString(new DOMParser().parseFromString(answer[1], 'text/xml'));
  return { answer: [answer[0], written] };
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

  // How the signature finds what it signs (xml-crypto's reference lookup, a DOM walk since
  // patches/xml-crypto+6.3.2.patch; test/saml/xml-crypto-patch.test.ts holds it to the XPaths).
  it('refuses an id repeated on another element, in any namespace and as any of ID, Id, id', () => {
    const signed = signAssertion(plain(), idp);
    const { id } = signaturePlace(signed, 'Assertion');
    for (const attribute of ['ID', 'Id', 'id', 'x:ID', 'x:id', 'saml:Id', 'xmlns:ID']) {
      const xml = signed.replace('</samlp:Status>', `</samlp:Status><x:Extra xmlns:x="urn:x" ${attribute}="${id}"/>`);
      expect(expectParity(xml), attribute).toEqual({
        thrown: expect.stringContaining('multiple elements with the same value for the ID / Id / Id attributes'),
      });
    }
    // Twice on the signed element itself, under two of the names.
    const twice = signed.replace(`<saml:Assertion ID="${id}"`, `<saml:Assertion ID="${id}" Id="${id}"`);
    expect(expectParity(twice)).toEqual({ thrown: expect.stringContaining('multiple elements') });
  });

  it('counts no other spelling of the id attribute', () => {
    const signed = signAssertion(plain(), idp);
    const { id } = signaturePlace(signed, 'Assertion');
    for (const attribute of ['iD', 'ID2', 'x:iD', 'xmlns:iD', 'IDREF']) {
      const xml = signed.replace('</samlp:Status>', `</samlp:Status><x:Extra xmlns:x="urn:x" ${attribute}="${id}"/>`);
      expect(expectParity(xml), attribute).toEqual({ answer: [true, expect.stringMatching(/^<saml:Assertion /)] });
    }
  });

  it('answers unverified for a reference to an id no element carries', () => {
    const signed = signAssertion(plain(), idp);
    const { id } = signaturePlace(signed, 'Assertion');
    expect(expectParity(signed.replace(`URI="#${id}"`, 'URI="#_nowhere"'))).toEqual({ answer: [false, null] });
  });

  it('answers no assertion for a signature of an element that is neither the response nor its assertion', () => {
    const unsigned = plain().replace(
      /(<saml:Issuer>[^<]*<\/saml:Issuer>)/,
      '$1<samlp:Extensions ID="_extensions"><x:Note xmlns:x="urn:x">signed</x:Note></samlp:Extensions>',
    );
    const xml = signElementWithId(unsigned, '_extensions', signaturePlace(unsigned, 'Response').at, idp);
    expect(expectParity(xml)).toEqual({ answer: [true, null] });
  });

  it("answers the assertion for an assertion's signature of the whole response around it", () => {
    // The ACS refuses this before (validate-response.ts: a signature references its own parent).
    const unsigned = plain();
    const xml = signElementWithId(
      unsigned,
      signaturePlace(unsigned, 'Response').id,
      signaturePlace(unsigned, 'Assertion').at,
      idp,
    );
    expect(expectParity(xml)).toEqual({ answer: [true, expect.stringMatching(/^<saml:Assertion /)] });
  });

  it('refuses a copy of the signature elsewhere in the document', () => {
    const signed = signAssertion(plain(), idp);
    const signature = /<ds:Signature[\s\S]*?<\/ds:Signature>/.exec(signed)![0];
    const xml = signed.replace('</samlp:Status>', `</samlp:Status><x:Copy xmlns:x="urn:x">${signature}</x:Copy>`);
    expect(expectParity(xml)).toEqual({
      thrown: expect.stringContaining('multiple Signature elements with the same SignatureValue'),
    });
    // Not a copy outside XML-DSig's namespace.
    const foreign = signature.replace('http://www.w3.org/2000/09/xmldsig#', 'urn:not-dsig');
    expect(
      expectParity(signed.replace('</samlp:Status>', `</samlp:Status><x:Copy xmlns:x="urn:x">${foreign}</x:Copy>`)),
    ).toEqual({ answer: [true, expect.stringMatching(/^<saml:Assertion /)] });
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
