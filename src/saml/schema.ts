import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateXML } from 'xmllint-wasm';

/**
 * SAML 2.0 schema validation with xmllint compiled to WebAssembly (xmllint-wasm, run in a worker
 * thread). Not @authenio/samlify-node-xmllint: its asm.js xmllint adds a process-wide
 * 'uncaughtException' listener and a stdout 'drain' listener that calls process.exit() on every
 * call, and writes to stdout.
 */
const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'schemas');
const file = (fileName: string) => ({ fileName, contents: fs.readFileSync(path.join(dir, fileName), 'utf8') });
const schema = file('saml-schema-protocol-2.0.xsd');
const preload = [
  'saml-schema-assertion-2.0.xsd',
  'xmldsig-core-schema.xsd',
  'xenc-schema.xsd',
  'XMLSchema.dtd',
  'datatypes.dtd',
].map(file);

/** Resolves when the XML is a schema-valid SAML protocol message; rejects naming the first problem. */
export async function validateSamlSchema(xml: string): Promise<string> {
  const result = await validateXML({ xml: [{ fileName: 'message.xml', contents: xml }], schema, preload });
  if (!result.valid) throw new Error(`schema: ${result.errors[0]?.message ?? 'invalid'}`);
  return 'SUCCESS_VALIDATE_XML';
}
