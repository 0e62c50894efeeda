import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { DOMParser, XMLSerializer } from '@xmldom/xmldom';
import { describe, expect, it } from 'vitest';
import { SignedXml, findAncestorNs } from 'xml-crypto';
import { encryptAssertion, makeIdpKeys, responseXml, signAssertion, signResponse } from './support/idp.ts';

/**
 * patches/xml-crypto+6.3.2.patch makes xml-crypto's signature check walk the DOM where it
 * evaluated XPath, and check a Document it is given instead of parsing the text again. Over a
 * corpus of responses (good ones, and ones bent where those lookups look: ids repeated under other
 * names, namespaces and cases, references to nothing or to the whole document, copied signatures,
 * comments, a stray SignedInfo, odd Algorithm attributes and SignatureValues), these tests hold it
 * to what it did before: what it reads from the signature and which element a reference resolves
 * to are what the original XPaths select, evaluated here with the `xpath` package xml-crypto
 * itself uses; the namespaces canonicalization inherits are what xml-crypto's XPath-based
 * findAncestorNs finds; checking the Document answers exactly what checking its text answers; and
 * loading the references only at the check (referencesAtCheck) answers what loading them twice did.
 */
const xpath = createRequire(createRequire(import.meta.url).resolve('xml-crypto'))('xpath') as {
  select: (expression: string, node: Node) => Node[];
  select1: (expression: string, node: Node) => Node | undefined;
};

const DSIG = 'http://www.w3.org/2000/09/xmldsig#';
const DUPLICATE_SIGNATURE =
  'Cannot validate a document which contains multiple Signature elements with the same SignatureValue, in order to prevent signature wrapping attack.';
const DUPLICATE_ID =
  'Cannot validate a document which contains multiple elements with the same value for the ID / Id / Id attributes, in order to prevent signature wrapping attack.';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const idp = makeIdpKeys('patch-idp');
const sp = makeIdpKeys('patch-sp');
const publicKey = new crypto.X509Certificate(Buffer.from(idp.certificate, 'base64')).publicKey
  .export({ type: 'spki', format: 'pem' })
  .toString();
const site = { acsUrl: 'https://sp.example.test/acs', audience: 'https://sp.example.test/metadata' };
const plain = () =>
  responseXml({ ...site, nameId: 'alice@example.com', responseId: '_response', assertionId: '_assertion' });

const bases: Record<string, () => string> = {
  'assertion signed': () => signAssertion(plain(), idp),
  'response signed': () => signResponse(plain(), idp),
  'both signed': () => signResponse(signAssertion(plain(), idp), idp),
  'response signed around an encrypted assertion': () =>
    signResponse(encryptAssertion(signAssertion(plain(), idp), sp.certificatePem), idp),
};

const atResponseLevel = (insert: string) => (xml: string) => xml.replace('</samlp:Status>', `</samlp:Status>${insert}`);
const firstSignature = (xml: string) => /<ds:Signature[\s\S]*?<\/ds:Signature>/.exec(xml)?.[0] ?? '';

const mutations: Record<string, (xml: string) => string> = {
  unchanged: (xml) => xml,
  ...Object.fromEntries(
    ['ID', 'Id', 'id', 'iD', 'IDREF', 'x:ID', 'x:id', 'x:iD', 'saml:Id', 'xmlns:ID', 'xmlns:id', 'xmlns:Id'].flatMap(
      (attribute) =>
        ['_assertion', '_response', ''].map((value) => [
          `another element with ${attribute}="${value}"`,
          atResponseLevel(`<x:Extra xmlns:x="urn:x" ${attribute}="${value}"/>`),
        ]),
    ),
  ),
  'another element with ID="_assertion" inside the assertion': (xml) =>
    xml.replace('</saml:Assertion>', '<x:Extra xmlns:x="urn:x" ID="_assertion"/></saml:Assertion>'),
  'the assertion with both ID and Id': (xml) => xml.replace('ID="_assertion"', 'ID="_assertion" Id="_assertion"'),
  'a reference to no id': (xml) => xml.replace(/URI="#[^"]*"/, 'URI="#_nowhere"'),
  'an empty reference': (xml) => xml.replace(/URI="#[^"]*"/, 'URI=""'),
  'a reference to "#"': (xml) => xml.replace(/URI="#[^"]*"/, 'URI="#"'),
  'a reference without "#"': (xml) => xml.replace(/URI="#([^"]*)"/, 'URI="$1"'),
  'a reference with a quote': (xml) => xml.replace(/URI="#[^"]*"/, `URI="#a'b"`),
  'no reference URI': (xml) => xml.replace(/ URI="#[^"]*"/, ''),
  'a copy of the signature elsewhere': (xml) =>
    atResponseLevel(`<x:Copy xmlns:x="urn:x">${firstSignature(xml)}</x:Copy>`)(xml),
  'a copy of the signature in another namespace': (xml) =>
    atResponseLevel(`<x:Copy xmlns:x="urn:x">${firstSignature(xml).replace(DSIG, 'urn:not-dsig')}</x:Copy>`)(xml),
  'the signature in another namespace': (xml) =>
    xml.replace(`<ds:Signature xmlns:ds="${DSIG}"`, '<ds:Signature xmlns:ds="urn:not-dsig"'),
  'a comment in the NameID': (xml) =>
    xml.replace('alice@example.com</saml:NameID>', 'alice@example.com<!--.evil.test--></saml:NameID>'),
  'a comment in the response': atResponseLevel('<!-- a comment -->'),
  'another SignedInfo before the signature': (xml) =>
    xml.replace(
      '<saml:Issuer>',
      `<x:Wrap xmlns:x="urn:x" xmlns:q="urn:q"><ds:SignedInfo xmlns:ds="${DSIG}"/></x:Wrap><saml:Issuer>`,
    ),
  'another SignedInfo before the signature, inclusive canonicalization': (xml) =>
    mutations['inclusive canonicalization of SignedInfo']!(mutations['another SignedInfo before the signature']!(xml)),
  'another SignedInfo before the signature, InclusiveNamespaces': (xml) =>
    mutations['InclusiveNamespaces for SignedInfo']!(mutations['another SignedInfo before the signature']!(xml)),
  'a namespace declared on the response': (xml) => xml.replace('<samlp:Response ', '<samlp:Response xmlns:q="urn:q" '),
  'inclusive canonicalization of SignedInfo': (xml) =>
    xml.replace(
      `<ds:CanonicalizationMethod Algorithm="${EXC_C14N}"/>`,
      '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>',
    ),
  'InclusiveNamespaces for SignedInfo': (xml) =>
    xml.replace(
      `<ds:CanonicalizationMethod Algorithm="${EXC_C14N}"/>`,
      `<ds:CanonicalizationMethod Algorithm="${EXC_C14N}"><ec:InclusiveNamespaces xmlns:ec="${EXC_C14N}" PrefixList="samlp saml q"/></ds:CanonicalizationMethod>`,
    ),
  'InclusiveNamespaces for the reference': (xml) =>
    xml.replace(
      `<ds:Transform Algorithm="${EXC_C14N}"/>`,
      `<ds:Transform Algorithm="${EXC_C14N}"><ec:InclusiveNamespaces xmlns:ec="${EXC_C14N}" PrefixList="samlp saml"/></ds:Transform>`,
    ),
  'Algorithm spelled algorithm': (xml) =>
    xml.replace('<ds:CanonicalizationMethod Algorithm=', '<ds:CanonicalizationMethod algorithm='),
  'SignatureMethod with ALGORITHM first': (xml) =>
    xml.replace('<ds:SignatureMethod Algorithm=', `<ds:SignatureMethod ALGORITHM="${DSIG}rsa-sha1" Algorithm=`),
  'Algorithm in a namespace': (xml) =>
    xml.replace('<ds:CanonicalizationMethod Algorithm=', '<ds:CanonicalizationMethod xmlns:x="urn:x" x:Algorithm='),
  'another CanonicalizationMethod first': (xml) =>
    xml.replace(
      '<ds:SignedInfo>',
      '<ds:SignedInfo><x:Pre xmlns:x="urn:x"><x:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/></x:Pre>',
    ),
  'the SignatureValue in CDATA': (xml) => xml.replace('<ds:SignatureValue>', '<ds:SignatureValue><![CDATA[QUJD]]>'),
  'a comment opening the SignatureValue': (xml) => xml.replace('<ds:SignatureValue>', '<ds:SignatureValue><!--c-->'),
  'a SignatureValue inside the SignatureValue': (xml) =>
    xml.replace('<ds:SignatureValue>', '<ds:SignatureValue><ds:SignatureValue>QUJD</ds:SignatureValue>'),
  'another KeyInfo first': (xml) => xml.replace('<ds:KeyInfo>', '<x:KeyInfo xmlns:x="urn:x"/><ds:KeyInfo>'),
  'no KeyInfo': (xml) => xml.replace(/<ds:KeyInfo>[\s\S]*?<\/ds:KeyInfo>/, ''),
};

/** xml-crypto's state (private) and its private methods, which these tests compare. */
interface SignedXmlInside {
  canonicalizationAlgorithm?: string;
  signatureAlgorithm?: string;
  signatureValue: string;
  keyInfo: Node | null;
  getCanonSignedInfoXml(doc: Document): string;
  getCanonXml(transforms: string[], node: Node, options: object): string;
  validateReference(reference: object, doc: Document): string | undefined;
  getCanonReferenceXml(doc: Document, reference: object, node: Node, ...rest: unknown[]): string;
}

const newSignedXml = () => {
  const sig = new SignedXml();
  sig.signatureAlgorithm = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
  sig.publicCert = publicKey;
  return sig;
};

function attempt<T>(run: () => T): { value: T } | { thrown: string } {
  try {
    return { value: run() };
  } catch (error) {
    return { thrown: (error as Error).message };
  }
}

/** What loadSignature read with its XPaths (the values it keeps when they select nothing). */
function loadedByXpath(signature: Element) {
  const canonicalization = xpath.select1(".//*[local-name(.)='CanonicalizationMethod']/@Algorithm", signature);
  const method = xpath.select1(".//*[local-name(.)='SignatureMethod']/@Algorithm", signature);
  const value = xpath.select1(".//*[local-name(.)='SignatureValue']/text()", signature);
  return {
    canonicalizationAlgorithm: (canonicalization as Attr | undefined)?.value,
    signatureAlgorithm: (method as Attr | undefined)?.value ?? 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    signatureValue: value?.nodeType === 3 ? (value as Text).data.replace(/\r?\n/g, '') : '',
    keyInfo: xpath.select1(".//*[local-name(.)='KeyInfo']", signature) ?? null,
  };
}

/** The element a reference resolves to, as validateReference found it with XPath. */
function referencedByXpath(doc: Document, uri: string) {
  const id = uri.startsWith('#') ? uri.slice(1) : uri;
  if (id === '') return { element: xpath.select1('//*', doc), path: undefined };
  if (id.includes("'")) return { thrown: 'Cannot validate a uri with quotes inside it' };
  let count = 0;
  let found: { element: Node | undefined; path: string | undefined } = { element: undefined, path: undefined };
  for (const name of ['Id', 'ID', 'id']) {
    const path = `//*[@*[local-name(.)='${name}']='${id}']`;
    const elements = xpath.select(path, doc);
    if (elements.length === 0) continue;
    count += elements.length;
    if (count > 1) return { thrown: DUPLICATE_ID };
    found = { element: elements[0], path };
  }
  return found;
}

/** Everything a check of `input` answers and leaves behind, for comparing two checks. */
function checkOutcome(signature: Element, input: string | Document, referencesAtCheck = false) {
  const sig = newSignedXml();
  sig.referencesAtCheck = referencesAtCheck;
  const result = attempt(() => {
    sig.loadSignature(signature);
    return sig.checkSignature(input);
  });
  return {
    result,
    signed: sig.getSignedReferences(),
    references: sig.getReferences().map((reference: any) => ({
      uri: reference.uri,
      xpath: reference.xpath,
      digest: reference.digestValue,
      error: reference.validationError?.message,
      ancestors: reference.ancestorNamespaces,
      signed: reference.signedReference,
    })),
  };
}

function signaturesIn(doc: Document): Element[] {
  const all = doc.getElementsByTagName('*');
  const found: Element[] = [];
  for (let i = 0; i < all.length; i++) if (all.item(i)!.localName === 'Signature') found.push(all.item(i)!);
  return found;
}

const corpus = Object.entries(bases).flatMap(([base, make]) =>
  Object.entries(mutations).map(([mutation, bend]) => ({ name: `${base}, ${mutation}`, xml: bend(make()) })),
);

describe('patched xml-crypto', () => {
  it('reads from the signature what its XPaths read', () => {
    for (const { name, xml } of corpus) {
      const doc = new DOMParser().parseFromString(xml, 'text/xml');
      for (const signature of signaturesIn(doc)) {
        const expected = loadedByXpath(signature);
        const sig = newSignedXml();
        const loaded = attempt(() => sig.loadSignature(signature));
        const inside = sig as unknown as SignedXmlInside;
        if (expected.canonicalizationAlgorithm === undefined) {
          expect(loaded, name).toEqual({ thrown: 'could not find CanonicalizationMethod/@Algorithm element' });
          continue;
        }
        expect(inside.canonicalizationAlgorithm, name).toBe(expected.canonicalizationAlgorithm);
        expect(inside.signatureAlgorithm, name).toBe(expected.signatureAlgorithm);
        if ('thrown' in loaded) continue; // a later check of loadSignature's, before the rest is read
        expect(inside.signatureValue, name).toBe(expected.signatureValue);
        expect(inside.keyInfo, name).toBe(expected.keyInfo);
      }
    }
  });

  it('resolves each reference to the element its XPaths select, or refuses as they made it refuse', () => {
    let resolved = 0;
    let refused = 0;
    for (const { name, xml } of corpus) {
      const doc = new DOMParser().parseFromString(xml, 'text/xml');
      for (const signature of signaturesIn(doc)) {
        const sig = newSignedXml();
        const inside = sig as unknown as SignedXmlInside;
        const prototype = SignedXml.prototype as unknown as SignedXmlInside;
        let reference: any;
        let resolvedTo: Node | undefined;
        inside.validateReference = (ref, document) => {
          reference = ref;
          return prototype.validateReference.call(sig, ref, document);
        };
        inside.getCanonReferenceXml = (document, ref, node, ...rest) => {
          resolvedTo = node;
          return prototype.getCanonReferenceXml.call(sig, document, ref, node, ...rest);
        };
        const checked = attempt(() => {
          sig.loadSignature(signature);
          return sig.checkSignature(doc);
        });
        if (reference === undefined) continue; // refused before, by code the patch left alone
        const expected = referencedByXpath(doc, reference.uri);
        if ('thrown' in expected) {
          expect(checked, name).toEqual({ thrown: expected.thrown });
          refused++;
          continue;
        }
        expect(reference.xpath, name).toBe(expected.path);
        if (expected.element === undefined) {
          expect(reference.validationError?.message, name).toMatch(/could not find such element/);
          continue;
        }
        resolved++;
        expect(resolvedTo, name).toBe(expected.element);
        // The namespaces its canonicalization inherits: those of the element the XPath selects.
        expect(reference.ancestorNamespaces, name).toEqual(findAncestorNs(doc, reference.xpath));
        // The enveloped-signature transform refuses to guess among signatures with the loaded one's
        // value (signatures in XML-DSig's namespace, by XPath).
        const value = (node: Node) => xpath.select1("./*[local-name(.)='SignatureValue']", node)?.textContent;
        const sameValue = xpath
          .select(`.//*[local-name(.)='Signature' and namespace-uri(.)='${DSIG}']`, doc)
          .filter((other) => value(other) === value(signature));
        if (value(signature) && sameValue.length > 1) expect(checked, name).toEqual({ thrown: DUPLICATE_SIGNATURE });
        else expect(checked, name).not.toEqual({ thrown: DUPLICATE_SIGNATURE });
      }
    }
    expect(resolved).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(50);
  });

  it("canonicalizes SignedInfo with the namespaces of the document's first SignedInfo", () => {
    for (const { name, xml } of corpus) {
      const doc = new DOMParser().parseFromString(xml, 'text/xml');
      for (const signature of signaturesIn(doc)) {
        const sig = newSignedXml();
        if ('thrown' in attempt(() => sig.loadSignature(signature))) continue;
        const inside = sig as unknown as SignedXmlInside;
        let signedInfo = signature.firstChild;
        while (signedInfo && (signedInfo as Element).localName !== 'SignedInfo') signedInfo = signedInfo.nextSibling;
        const expected = attempt(() =>
          inside.getCanonXml([inside.canonicalizationAlgorithm!], signedInfo!, {
            ancestorNamespaces: findAncestorNs(doc, "//*[local-name()='SignedInfo']"),
          }),
        );
        expect(
          attempt(() => inside.getCanonSignedInfoXml(doc)),
          name,
        ).toEqual(expected);
      }
    }
  });

  it('answers for the parsed Document exactly what it answers for its text', () => {
    const answers = new Set<string>();
    for (const { name, xml } of corpus) {
      const doc = new DOMParser().parseFromString(xml, 'text/xml');
      const text = new XMLSerializer().serializeToString(doc);
      for (const signature of signaturesIn(doc)) {
        const ofDocument = checkOutcome(signature, doc);
        expect(ofDocument, name).toEqual(checkOutcome(signature, text));
        answers.add('value' in ofDocument.result ? String(ofDocument.result.value) : ofDocument.result.thrown);
      }
    }
    // The corpus reaches every way a check ends: verified, not, and each refusal.
    expect([...answers]).toEqual(
      expect.arrayContaining([
        'true',
        'false',
        DUPLICATE_ID,
        DUPLICATE_SIGNATURE,
        'Cannot validate a uri with quotes inside it',
        'could not find CanonicalizationMethod/@Algorithm element',
      ]),
    );
  });

  it('answers the same when the references are loaded only at the check (referencesAtCheck)', () => {
    for (const { name, xml } of corpus) {
      const doc = new DOMParser().parseFromString(xml, 'text/xml');
      for (const signature of signaturesIn(doc)) {
        expect(checkOutcome(signature, doc, true), name).toEqual(checkOutcome(signature, doc));
      }
    }
    // Loading alone then leaves them unloaded (checkSignature loads them from its canonical SignedInfo).
    const sig = newSignedXml();
    sig.referencesAtCheck = true;
    sig.loadSignature(signaturesIn(new DOMParser().parseFromString(bases['assertion signed']!(), 'text/xml'))[0]!);
    expect(sig.getReferences()).toEqual([]);
  });

  it('gives each checked reference a plain getValidatedNode that still finds the element', async () => {
    // util.deprecate made each reference's function the prototype of its wrapper: a map per
    // check pointing at a closure over the document, which promoted the whole DOM out of the
    // young generation at every collection. The deprecated method itself still works.
    const doc = new DOMParser().parseFromString(bases['assertion signed']!(), 'text/xml');
    const sig = newSignedXml();
    sig.loadSignature(signaturesIn(doc)[0]!);
    expect(sig.checkSignature(doc)).toBe(true);
    const [reference] = sig.getReferences() as unknown as { getValidatedNode: () => Element | null }[];
    expect(Object.getPrototypeOf(reference!.getValidatedNode)).toBe(Function.prototype);
    const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
    expect(reference!.getValidatedNode()?.getAttribute('ID')).toBe('_assertion');
    expect((await warned).name).toBe('DeprecationWarning');
  });
});
