import { Worker } from 'node:worker_threads';
import type { SignatureJob } from './signature-worker.ts';

/**
 * XML signature verification (xml-signature.ts) in one long-lived worker thread: it is most of a
 * sign-in's CPU, and the event loop serves other requests meanwhile. The worker starts with the
 * ACS (or on first use) and is kept; jobs queue in it and run in turn, so there is never more
 * than one verifier however many posts arrive. A worker that dies fails its jobs and is replaced
 * on the next one.
 */
type Answer = [verified: boolean, signedXml: string | null];

interface Verifier {
  thread: Worker;
  /** Its jobs not answered yet, by id. */
  pending: Map<number, { resolve: (answer: Answer) => void; reject: (error: Error) => void }>;
}

let verifier: Verifier | undefined;
let lastId = 0;

/** The worker died (or could not start): the jobs it had fail with this. */
export class VerifierStopped extends Error {}

/** Starts the worker now, so the first sign-in does not wait for it. */
export function prepareSignatureVerifier(): void {
  verifier ??= startVerifier();
}

/**
 * Stops the worker now (as a crash would): the jobs it has fail with VerifierStopped, and the next
 * job starts another worker.
 */
export async function stopSignatureVerifier(): Promise<void> {
  await verifier?.thread.terminate();
}

/** verifyXmlSignature of the parsed `xml`, in the worker; rejects with the verifier's error message. */
export function verifySignatureInWorker(xml: string, certificate: string): Promise<Answer> {
  const { thread, pending } = (verifier ??= startVerifier());
  const id = ++lastId;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    thread.ref(); // kept alive while it has work, whatever else the process waits for
    thread.postMessage({ id, xml, certificate } satisfies SignatureJob);
  });
}

function startVerifier(): Verifier {
  const thread = import.meta.url.endsWith('.js')
    ? // Built (npm run build): the worker's JavaScript lies beside this module's.
      new Worker(new URL('./signature-worker.js', import.meta.url))
    : // From the sources: through tsx, as the app itself runs, however the process was started.
      new Worker(
        `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(
          new URL('./signature-worker.ts', import.meta.url).href,
        )}); });`,
        { eval: true },
      );
  const started: Verifier = { thread, pending: new Map() };
  const { pending } = started;
  thread.unref();
  thread.on('message', ({ id, answer, error }: { id: number; answer?: Answer; error?: string }) => {
    const job = pending.get(id);
    pending.delete(id);
    if (pending.size === 0) thread.unref();
    if (error === undefined) job?.resolve(answer!);
    else job?.reject(new Error(error));
  });
  const fail = (reason: string) => {
    if (verifier === started) verifier = undefined;
    for (const job of pending.values()) job.reject(new VerifierStopped(`the signature verifier stopped: ${reason}`));
    pending.clear();
  };
  thread.on('error', (error) => fail(error.message));
  thread.on('exit', (code) => fail(`exit code ${code}`));
  return started;
}
