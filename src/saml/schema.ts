import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ParseOption,
  XmlBufferInputProvider,
  XmlDocument,
  XmlLibError,
  XsdValidator,
  xmlRegisterInputProvider,
} from 'libxml2-wasm';

/**
 * SAML 2.0 schema validation with libxml2 compiled to WebAssembly (libxml2-wasm), in process.
 * The schema set is compiled once, on first use, and kept: a message then costs its parse and
 * validation (well under a millisecond for a typical response), where running the xmllint
 * program per message (xmllint-wasm) spent a worker thread, a WebAssembly instance and a
 * schema compilation (about 250 ms of CPU) on every post. Validation is synchronous, so
 * concurrent posts cannot pile up validators: memory stays bounded by the message size limit.
 *
 * The schemas are served to libxml2 from memory (their imports and the DTD two of them
 * declare); a message is parsed with the default options, which load no DTD, substitute no
 * entity and reach no file or network (and the ACS refuses any DOCTYPE before this).
 */
const SCHEMA_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'schemas');
const SCHEMA_URL_PREFIX = 'orgsync-saml-schemas/';
const PROTOCOL_SCHEMA = `${SCHEMA_URL_PREFIX}saml-schema-protocol-2.0.xsd`;
const METADATA_SCHEMA = `${SCHEMA_URL_PREFIX}saml-schema-metadata-2.0.xsd`;

let schemaFiles: Record<string, Uint8Array> | undefined;
const validators = new Map<string, XsdValidator>();

function compiledSchema(root = PROTOCOL_SCHEMA): XsdValidator {
  const compiled = validators.get(root);
  if (compiled) return compiled;
  if (!schemaFiles) {
    const files: Record<string, Uint8Array> = {};
    for (const name of fs.readdirSync(SCHEMA_DIR))
      files[`${SCHEMA_URL_PREFIX}${name}`] = fs.readFileSync(path.join(SCHEMA_DIR, name));
    xmlRegisterInputProvider(new XmlBufferInputProvider(files));
    schemaFiles = files;
  }
  // The W3C schemas declare XMLSchema.dtd (for their own entities): loaded from memory.
  const schemaDoc = XmlDocument.fromBuffer(schemaFiles[root]!, {
    url: root,
    option: ParseOption.XML_PARSE_DTDLOAD,
  });
  // The compiled schema may point into its document: both live as long as the process.
  const validator = XsdValidator.fromDoc(schemaDoc);
  validators.set(root, validator);
  return validator;
}

/** Compiles the schema now (at start-up), so the first sign-in does not pay for it. */
export function prepareSamlSchema(): void {
  compiledSchema();
}

/** Throws naming the first problem unless the XML is a schema-valid SAML protocol message. */
export function checkSamlSchema(xml: string): void {
  validate(xml, PROTOCOL_SCHEMA);
}

/** Throws naming the first problem unless the XML is schema-valid SAML metadata. */
export function checkMetadataSchema(xml: string): void {
  validate(xml, METADATA_SCHEMA);
}

function validate(xml: string, root: string): void {
  const schema = compiledSchema(root);
  let doc: XmlDocument | undefined;
  try {
    doc = XmlDocument.fromString(xml);
    schema.validate(doc);
  } catch (error) {
    if (!(error instanceof XmlLibError)) throw error;
    const problem = error.message.trim().split('\n')[0] || 'invalid';
    throw new Error(`schema: ${problem}`, { cause: error });
  } finally {
    doc?.dispose();
  }
}

/** checkSamlSchema as samlify's (asynchronous) schema validator interface wants it. */
export function validateSamlSchema(xml: string): Promise<string> {
  return new Promise((resolve) => {
    checkSamlSchema(xml);
    resolve('SUCCESS_VALIDATE_XML');
  });
}
