import { afterAll, describe, expect, it } from 'vitest';
import { VerifierStopped, stopSignatureVerifier, verifySignatureInWorker } from '../../src/saml/signature-verifier.ts';
import { makeIdpKeys, responseXml, signAssertion } from './support/idp.ts';

/**
 * The signature worker dying (signature-verifier.ts): the jobs it had fail with VerifierStopped,
 * which validate-response.ts rethrows as the server's failure rather than refusing the message,
 * and the next job gets a new worker.
 */
describe('the signature worker', () => {
  const idp = makeIdpKeys('verifier-idp');
  const signed = signAssertion(
    responseXml({
      acsUrl: 'https://sp.example.test/saml/acme/acs',
      audience: 'https://sp.example.test/saml/acme/metadata',
      nameId: 'alice@example.com',
    }),
    idp,
  );
  afterAll(() => stopSignatureVerifier());

  it('fails the jobs it has when it stops, and the next job gets a new worker that answers', async () => {
    expect((await verifySignatureInWorker(signed, idp.certificate))[0]).toBe(true);

    // terminate() stops the worker's JavaScript before it returns: a job posted now is never answered.
    const stopped = stopSignatureVerifier();
    const orphaned = verifySignatureInWorker(signed, idp.certificate);
    await stopped;
    await expect(orphaned).rejects.toBeInstanceOf(VerifierStopped);
    await expect(orphaned).rejects.toThrow(/the signature verifier stopped/);

    const [verified, signedXml] = await verifySignatureInWorker(signed, idp.certificate);
    expect(verified).toBe(true);
    expect(signedXml).toContain('alice@example.com');
  });
});
