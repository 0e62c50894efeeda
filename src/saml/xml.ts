import { DOMParser } from '@xmldom/xmldom';

export const NS = {
  protocol: 'urn:oasis:names:tc:SAML:2.0:protocol',
  assertion: 'urn:oasis:names:tc:SAML:2.0:assertion',
  metadata: 'urn:oasis:names:tc:SAML:2.0:metadata',
  dsig: 'http://www.w3.org/2000/09/xmldsig#',
} as const;

/** Thrown for XML orgsync will not read: not well-formed, or with a DOCTYPE (entity expansion, XXE). */
export class UnsafeXmlError extends Error {
  constructor(
    readonly kind: 'doctype' | 'malformed',
    message: string,
  ) {
    super(message);
  }
}

/** Parses untrusted XML: any DOCTYPE is refused and any parser warning or error is fatal. */
export function parseUntrustedXml(xml: string): Document {
  if (/<!DOCTYPE|<!ENTITY/i.test(xml))
    throw new UnsafeXmlError('doctype', 'the XML contains a DOCTYPE or entity declaration');
  const fail = (message: string) => {
    throw new UnsafeXmlError('malformed', `the XML is not well-formed: ${message.split('\n')[0]}`);
  };
  let doc: Document;
  try {
    doc = new DOMParser({ errorHandler: { warning: fail, error: fail, fatalError: fail } }).parseFromString(
      xml,
      'text/xml',
    );
  } catch (error) {
    if (error instanceof UnsafeXmlError) throw error;
    throw new UnsafeXmlError('malformed', `the XML is not well-formed: ${(error as Error).message.split('\n')[0]}`);
  }
  if (!doc?.documentElement) throw new UnsafeXmlError('malformed', 'the XML has no root element');
  return doc;
}

export function childElements(parent: Node, ns: string, localName: string): Element[] {
  const found: Element[] = [];
  for (let node = parent.firstChild; node; node = node.nextSibling) {
    if (node.nodeType === 1 && (node as Element).namespaceURI === ns && (node as Element).localName === localName)
      found.push(node as Element);
  }
  return found;
}

export function childElement(parent: Node, ns: string, localName: string): Element | null {
  return childElements(parent, ns, localName)[0] ?? null;
}

/** Every element below `root` (itself included), depth first. */
export function* allElements(root: Element): Generator<Element> {
  yield root;
  for (let node = root.firstChild; node; node = node.nextSibling) {
    if (node.nodeType === 1) yield* allElements(node as Element);
  }
}

/** True when a comment node lies anywhere below `root`. */
export function containsComment(root: Node): boolean {
  for (let node = root.firstChild; node; node = node.nextSibling) {
    if (node.nodeType === 8 || containsComment(node)) return true;
  }
  return false;
}

/** The element's text, trimmed (text of all child text nodes). */
export function textOf(element: Element | null): string | null {
  if (!element) return null;
  const text = (element.textContent ?? '').trim();
  return text === '' ? null : text;
}
