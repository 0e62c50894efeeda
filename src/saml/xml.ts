import { DOMParser } from '@xmldom/xmldom';

export const NS = {
  protocol: 'urn:oasis:names:tc:SAML:2.0:protocol',
  assertion: 'urn:oasis:names:tc:SAML:2.0:assertion',
  metadata: 'urn:oasis:names:tc:SAML:2.0:metadata',
  dsig: 'http://www.w3.org/2000/09/xmldsig#',
} as const;

/**
 * Thrown for XML orgsync will not read: not well-formed, with a DOCTYPE (entity expansion, XXE),
 * or nested deeper than any SAML message is (a recursive walk over it would overflow the stack).
 */
export class UnsafeXmlError extends Error {
  constructor(
    readonly kind: 'doctype' | 'malformed' | 'too_deep',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Elements nested deeper than this are refused. A signed, encrypted SAML Response is about 10
 * deep (Response, EncryptedAssertion, EncryptedData, KeyInfo, EncryptedKey, CipherData, ...).
 */
export const MAX_XML_DEPTH = 64;

/**
 * The deepest element nesting of `xml`, counted in one pass over the text without building
 * anything (no recursion, no parser): start tags open, end tags and `/>` close; comments, CDATA,
 * processing instructions and quoted attribute values are skipped. Stops counting at `limit + 1`.
 */
export function xmlDepth(xml: string, limit = MAX_XML_DEPTH): number {
  let depth = 0;
  let deepest = 0;
  let at = xml.indexOf('<');
  const skipPast = (end: string, from: number) => {
    const found = xml.indexOf(end, from);
    return found < 0 ? xml.length : found + end.length;
  };
  while (at >= 0 && at < xml.length) {
    if (xml.startsWith('<!--', at)) at = skipPast('-->', at + 4);
    else if (xml.startsWith('<![CDATA[', at)) at = skipPast(']]>', at + 9);
    else if (xml.startsWith('<?', at)) at = skipPast('?>', at + 2);
    else if (xml.startsWith('<!', at)) at = skipPast('>', at + 2);
    else if (xml.startsWith('</', at)) {
      depth--;
      at = skipPast('>', at + 2);
    } else {
      // A start tag: find its end outside quoted attribute values.
      let i = at + 1;
      let quote = '';
      for (; i < xml.length; i++) {
        const c = xml[i];
        if (quote) {
          if (c === quote) quote = '';
        } else if (c === '"' || c === "'") quote = c;
        else if (c === '>') break;
      }
      if (xml[i - 1] !== '/') {
        depth++;
        if (depth > deepest) deepest = depth;
        if (deepest > limit) return deepest;
      }
      at = i + 1;
    }
    at = xml.indexOf('<', at);
  }
  return deepest;
}

/**
 * Parses untrusted XML: any DOCTYPE is refused, so is nesting deeper than MAX_XML_DEPTH (before
 * the parser or any walk sees it), and any parser warning or error is fatal.
 */
export function parseUntrustedXml(xml: string): Document {
  if (/<!DOCTYPE|<!ENTITY/i.test(xml))
    throw new UnsafeXmlError('doctype', 'the XML contains a DOCTYPE or entity declaration');
  if (xmlDepth(xml) > MAX_XML_DEPTH)
    throw new UnsafeXmlError('too_deep', `the XML nests elements more than ${MAX_XML_DEPTH} deep`);
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

/**
 * Every element below `root` (itself included), depth first in document order. Walked with a
 * stack of its own: a recursive generator resumes one frame per level for every element.
 */
export function* allElements(root: Element): Generator<Element> {
  const stack: Element[] = [root];
  for (let element = stack.pop(); element; element = stack.pop()) {
    yield element;
    // Pushed last child first, so the first child comes off the stack next.
    for (let node = element.lastChild; node; node = node.previousSibling) {
      if (node.nodeType === 1) stack.push(node as Element);
    }
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
