import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type * as verifier from '../../src/saml/signature-verifier.ts';
import { stopSignatureVerifier } from '../../src/saml/signature-verifier.ts';
import { responseXml, signAssertion } from './support/idp.ts';
import { lastAttempt, postResponse, samlFixture, sessionCookieOf, type SamlFixture } from './support/setup.ts';

/**
 * The signature worker dying during a sign-in, through the ACS: the real worker is stopped with
 * the sign-in's job in it (stopping it first, as signature-verifier.test.ts shows, leaves a job
 * posted after it never answered). Only the moment is arranged; the death is real.
 */
const worker = vi.hoisted(() => ({ dieWithNextJob: false }));
vi.mock('../../src/saml/signature-verifier.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof verifier>();
  return {
    ...actual,
    verifySignatureInWorker: (xml: string, certificate: string) => {
      if (!worker.dieWithNextJob) return actual.verifySignatureInWorker(xml, certificate);
      worker.dieWithNextJob = false;
      void actual.stopSignatureVerifier();
      return actual.verifySignatureInWorker(xml, certificate);
    },
  };
});

let f: SamlFixture;
beforeAll(async () => {
  f = await samlFixture('worker-death');
});
afterAll(async () => {
  await stopSignatureVerifier();
  await f.ctx.database.close();
});

describe('the signature worker dying mid-sign-in', () => {
  it('answers 500 and uses up nothing: the same response then signs the person in', async () => {
    const xml = signAssertion(
      responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: 'owner@worker-death.test' }),
      f.idp,
    );
    worker.dieWithNextJob = true;
    const failed = await postResponse(f, xml);
    expect(failed.status).toBe(500);
    expect(failed.text).not.toMatch(/signature verifier|stack/i);
    expect(sessionCookieOf(failed)).toBeUndefined();
    // Not the IdP's fault nor the person's: no refusal is recorded, and the assertion stays unused.
    expect(await lastAttempt(f)).toBeUndefined();
    const [used] = await f.ctx
      .sql`select count(*)::int as n from saml_replay_cache where organization_id = ${f.organization.id}`;
    expect(used!.n).toBe(0);

    const retried = await postResponse(f, xml);
    expect(retried.status, retried.text).toBe(303);
    expect(sessionCookieOf(retried)).toBeDefined();
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'success', nameId: 'owner@worker-death.test' });
  });
});
