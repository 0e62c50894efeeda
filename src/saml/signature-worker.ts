import { parentPort } from 'node:worker_threads';
import { verifyXmlSignature } from './xml-signature.ts';
import { parseUntrustedXml } from './xml.ts';

/** The thread of signature-verifier.ts: verifies each message posted to it, in turn. */
export interface SignatureJob {
  id: number;
  xml: string;
  certificate: string;
}

parentPort?.on('message', ({ id, xml, certificate }: SignatureJob) => {
  try {
    parentPort!.postMessage({ id, answer: verifyXmlSignature(parseUntrustedXml(xml), certificate) });
  } catch (error) {
    parentPort!.postMessage({ id, error: String((error as Error)?.message ?? error) });
  }
});
