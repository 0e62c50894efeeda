import { DOMParser, XMLSerializer } from '@xmldom/xmldom';
import { describe, expect, it } from 'vitest';
import { encryptAssertion, makeIdpKeys, responseXml, signAssertion, signResponse } from './support/idp.ts';

/**
 * patches/@xmldom+xmldom+0.8.15.patch makes cloneNode copy a node's own properties by Object.keys
 * instead of for-in with hasOwnProperty (which walked every node's prototype chain). xml-crypto
 * deep-clones what it canonicalizes, so a clone must be the same tree: every node's own scalar
 * properties equal, and the same serialization, over signed, encrypted and hand-made documents.
 */
const idp = makeIdpKeys('xmldom-idp');
const sp = makeIdpKeys('xmldom-sp');
const site = { acsUrl: 'https://sp.example.test/acs', audience: 'https://sp.example.test/metadata' };
const plain = () => responseXml({ ...site, nameId: 'alice@example.com' });

const documents: Record<string, () => string> = {
  'assertion signed': () => signAssertion(plain(), idp),
  'response signed': () => signResponse(plain(), idp),
  'assertion encrypted': () => signResponse(encryptAssertion(signAssertion(plain(), idp), sp.certificatePem), idp),
  'comments, CDATA, processing instructions, prefixed and default namespaces': () =>
    `<?xml version="1.0"?><r xmlns="urn:a" xmlns:b="urn:b" b:x="1" y='2'><!-- c --><b:e b:z="&lt;&amp;">t<![CDATA[<raw>]]></b:e><?pi data?><e/></r>`,
};

/** Each node's own properties that are not objects (what cloneNode copies), in document order. */
function scalarsOf(node: Node): Record<string, unknown>[] {
  const found: Record<string, unknown>[] = [];
  const visit = (n: Node) => {
    found.push(Object.fromEntries(Object.entries(n).filter(([, value]) => typeof value !== 'object')));
    const attributes = (n as Element).attributes;
    for (let i = 0; attributes && i < attributes.length; i++) visit(attributes.item(i)!);
    for (let child = n.firstChild; child; child = child.nextSibling) visit(child);
  };
  visit(node);
  return found;
}

describe('the xmldom patch: a deep clone', () => {
  for (const [name, make] of Object.entries(documents)) {
    it(`is the same tree as the original (${name})`, () => {
      const root = new DOMParser().parseFromString(make(), 'text/xml').documentElement;
      const clone = root.cloneNode(true);
      expect(scalarsOf(clone)).toEqual(scalarsOf(root));
      expect(new XMLSerializer().serializeToString(clone)).toBe(new XMLSerializer().serializeToString(root));
      // A copy, not the same nodes: removing from the clone leaves the original whole.
      const before = new XMLSerializer().serializeToString(root);
      clone.removeChild(clone.firstChild!);
      expect(new XMLSerializer().serializeToString(root)).toBe(before);
    });
  }
});
