import { webcrypto } from 'node:crypto';
import * as xmldom from '@xmldom/xmldom';
import { describe, expect, it } from 'vitest';
import { Application, SignedXml } from 'xmldsigjs';
import { makeIdpKeys, responseXml, signAssertion, signResponse, type IdpKeys } from './support/idp.ts';

/**
 * The test IdP's signatures checked by a verifier that is neither orgsync's (samlify, xml-crypto)
 * nor the IdP's own code path: xmldsigjs's SignedXml, with the key from the certificate in KeyInfo.
 * (test/interop/ has xmlsec1 check them too.)
 */
// xmldsigjs uses what a browser has: WebCrypto, and DOM classes to parse and serialize.
Application.setEngine('NodeJS', webcrypto as unknown as Crypto);
Object.assign(globalThis, { DOMParser: xmldom.DOMParser, XMLSerializer: xmldom.XMLSerializer });

const keys: IdpKeys = makeIdpKeys();
const response = () => responseXml({ acsUrl: 'https://sp.test/acs', audience: 'https://sp.test/metadata' });

/** Verifies each ds:Signature of the document; answers one result per signature. */
async function verifyAll(xml: string): Promise<boolean[]> {
  const doc = new xmldom.DOMParser().parseFromString(xml, 'application/xml');
  const signatures = doc.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#', 'Signature');
  const results: boolean[] = [];
  for (let i = 0; i < signatures.length; i++) {
    const signed = new SignedXml(doc);
    signed.LoadXml(signatures.item(i)!);
    results.push(await signed.Verify());
  }
  return results;
}

describe('the test IdP', () => {
  it('writes assertion signatures xmldsigjs verifies', async () => {
    expect(await verifyAll(signAssertion(response(), keys))).toEqual([true]);
  });

  it('writes a Response signature around a signed assertion that xmldsigjs verifies, both of them', async () => {
    expect(await verifyAll(signResponse(signAssertion(response(), keys), keys))).toEqual([true, true]);
  });

  it('writes SHA-1 variants that still verify (the SP refuses them by policy, not as broken)', async () => {
    expect(await verifyAll(signAssertion(response(), keys, 'sha1'))).toEqual([true]);
    expect(await verifyAll(signAssertion(response(), keys, 'sha1-digest'))).toEqual([true]);
  });

  it('makes a signature that no longer verifies once the assertion changes', async () => {
    const signed = signAssertion(response(), keys);
    await expect(verifyAll(signed.replace('alice@example.com', 'mallory@example.com'))).rejects.toThrow(
      /Invalid digest/,
    );
  });
});
