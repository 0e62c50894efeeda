import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { SamlConnection } from './connections.ts';
import { spUrls } from './service-provider.ts';
import { readResponse, verifyResponse, type ServiceProviderSide, type VerifiedAssertion } from './validate-response.ts';

/**
 * Warms the ACS's checks when the server starts. Cold, a sign-in costs two to three times its
 * CPU: V8 has not compiled the XML parser, the canonicalization and the checks yet, nor tiered
 * up the schema validator's WebAssembly; that lasts about the first 150 sign-ins after every start
 * or deploy, and at 16 in flight it doubled their latency. So the server runs a sample response
 * through every check a sign-in's message meets (parse, structure, algorithms, schema, the
 * signature in its worker, the assertion's conditions) a couple of hundred times: about a second
 * of CPU, spent only while the server is otherwise idle (a burst of SCIM writes right after a
 * start goes first). Nothing is read or written: the sample is signed by a throwaway key that only
 * the connection below trusts.
 */
const WARM_UP_ROUNDS = 200;
/** Rounds run between two looks at whether the server is idle. */
const ROUNDS_PER_TURN = 20;
/** Idle: the event loop was busy less than this share of the last IDLE_WINDOW_MS. */
const IDLE_UTILIZATION = 0.05;
const IDLE_WINDOW_MS = 100;

/**
 * Answers the sample's assertion as the last round verified it; throws what a check refused.
 * `idle` resolves when the next turn may run (tests pass one that never waits).
 */
export async function warmUpSignInChecks(
  rounds = WARM_UP_ROUNDS,
  idle: () => Promise<void> = eventLoopIdle,
): Promise<VerifiedAssertion | undefined> {
  let verified: VerifiedAssertion | undefined;
  for (let round = 0; round < rounds; round++) {
    if (round % ROUNDS_PER_TURN === 0) await idle();
    const { doc } = readResponse(SAMPLE_RESPONSE);
    verified = await verifyResponse(SAMPLE_RESPONSE, doc, SAMPLE_CONNECTION, SAMPLE_SP, SAMPLE_SIGNED_AT);
  }
  return verified;
}

/** Resolves once the event loop has been mostly idle for a window. */
async function eventLoopIdle(): Promise<void> {
  for (;;) {
    const before = performance.eventLoopUtilization();
    await sleep(IDLE_WINDOW_MS, undefined, { ref: false });
    if (performance.eventLoopUtilization(before).utilization < IDLE_UTILIZATION) return;
  }
}

/**
 * What the sample was signed for; made by test/saml/support/idp.ts (responseXml, signAssertion).
 * It is not encrypted: its checks never ask for the SP's entity (its keys).
 */
const SAMPLE_SP: ServiceProviderSide = {
  urls: spUrls('https://orgsync.invalid', { slug: 'warm-up' }),
  entity: () => Promise.reject(new Error('the warm-up sample is not encrypted')),
};
const SAMPLE_SIGNED_AT = new Date('2026-12-04T05:30:43Z');
const SAMPLE_CERTIFICATE =
  'MIICvTCCAaWgAwIBAgIJATEFk2NCZymBMA0GCSqGSIb3DQEBCwUAMB4xHDAaBgNVBAMTE29yZ3N5bmMgd2FybS11cCBJZFAwHhcNMjYxMjA0MDUyOTQzWhcNMjcwMTAzMDUzMDQzWjAeMRwwGgYDVQQDExNvcmdzeW5jIHdhcm0tdXAgSWRQMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwWjtarilzX0jC/BrdKZJgsd9IPuMcmbJHuEUBV95Wj84GKxQMou2vltoNiYYwrUO0ker35kdmeD5FxmfjxiCUfkfuzrBfrXHrCV4SyJYrTU5iqnwV6doDW2CWhUmaD0HnOL45B9LjTJjbkrnSBuKb7T9pgvS0GLeRmdp56C+SIL6WYyV2Qjfg1BbNY0QiB+7Jc0rTBSVX12OZPFnRKgug/UAUFdBKiuzlUvEoDdOTpLziKT4/oO0CrP4yI2xRG4TMFruC/6aTMmvV6Swzl0dWwRusrksxWAM7b+9W82zy/Bm695PURqrAZX+Lj5weyHbR2v68obLTazsUtXHXtjgXwIDAQABMA0GCSqGSIb3DQEBCwUAA4IBAQCc2BjuSQw3TzztMnGjQZb9ChxJsCNZQir9D0j/o3qZw7NbIE1p4I89IhAujZG94mPsasTAf2wfXhp7ThGWOXBZ2FMPQsDN0Xs++2/+jy5b/blVAlqUin9s9+Ze19LOvq1mmG+vT3xDUB65qGpuUV2CtaqRkjvIRdLuoaV22fBONg0XdSrS+v7UBrJHEKnlK5I0XdKJ8Hwe01xzZgewhEHLvaeOwXOlRLpNNQM60Iyk70JXlp1nMkR7tWzkirSMb/l3TF26j0iLBd+hxiGcsi0p2IPS7OyPrT7MDcmcKmD6jYGNmqfTdDm+DXgRLSIyYY/K1iU2SV2UTqXkQdpuQCMs';
const SAMPLE_RESPONSE =
  '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_warm_up_response" Version="2.0" IssueInstant="2026-12-04T05:30:43Z" Destination="https://orgsync.invalid/saml/warm-up/acs"><saml:Issuer>https://idp.orgsync.invalid/metadata</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="_warm_up_assertion" Version="2.0" IssueInstant="2026-12-04T05:30:43Z"><saml:Issuer>https://idp.orgsync.invalid/metadata</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#_warm_up_assertion"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>0qEGZquKQGCOTP+pa8PsGQ3EBzDctZQGqW6TECKgQ50=</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>MdUx6FZPBcKU3rSblc6PWBUni8zMReuRdZQJTftpQiBRveu2g/heUsXz2FwzaHaJDmOH8bowuDfsi0Pb00r9dZxUNk5oTgitF1Y9Q3wETY3BtfJvGE8O/PRE6EBnLdzzClx54b4ieTrFUHLZX3cbYM8yniLTfefcA34BmVW61azBL0CZ+6a9WnMXi9wIfpvaMMGWkfvTms0/B97dsQ9dFA/l83n1hDl7syzNWE93XEsXcjH/riTLU5waZaQBj3Wf7i7+STKBvZwHkxx+A2eoIo15RdJtBwrgfW6yyMtMDldbWEbJWOu+O4wwgir+SrdCRAxrQHMLIUYlwentHWbzlQ==</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>MIICvTCCAaWgAwIBAgIJATEFk2NCZymBMA0GCSqGSIb3DQEBCwUAMB4xHDAaBgNVBAMTE29yZ3N5bmMgd2FybS11cCBJZFAwHhcNMjYxMjA0MDUyOTQzWhcNMjcwMTAzMDUzMDQzWjAeMRwwGgYDVQQDExNvcmdzeW5jIHdhcm0tdXAgSWRQMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwWjtarilzX0jC/BrdKZJgsd9IPuMcmbJHuEUBV95Wj84GKxQMou2vltoNiYYwrUO0ker35kdmeD5FxmfjxiCUfkfuzrBfrXHrCV4SyJYrTU5iqnwV6doDW2CWhUmaD0HnOL45B9LjTJjbkrnSBuKb7T9pgvS0GLeRmdp56C+SIL6WYyV2Qjfg1BbNY0QiB+7Jc0rTBSVX12OZPFnRKgug/UAUFdBKiuzlUvEoDdOTpLziKT4/oO0CrP4yI2xRG4TMFruC/6aTMmvV6Swzl0dWwRusrksxWAM7b+9W82zy/Bm695PURqrAZX+Lj5weyHbR2v68obLTazsUtXHXtjgXwIDAQABMA0GCSqGSIb3DQEBCwUAA4IBAQCc2BjuSQw3TzztMnGjQZb9ChxJsCNZQir9D0j/o3qZw7NbIE1p4I89IhAujZG94mPsasTAf2wfXhp7ThGWOXBZ2FMPQsDN0Xs++2/+jy5b/blVAlqUin9s9+Ze19LOvq1mmG+vT3xDUB65qGpuUV2CtaqRkjvIRdLuoaV22fBONg0XdSrS+v7UBrJHEKnlK5I0XdKJ8Hwe01xzZgewhEHLvaeOwXOlRLpNNQM60Iyk70JXlp1nMkR7tWzkirSMb/l3TF26j0iLBd+hxiGcsi0p2IPS7OyPrT7MDcmcKmD6jYGNmqfTdDm+DXgRLSIyYY/K1iU2SV2UTqXkQdpuQCMs</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature><saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">warm-up@orgsync.invalid</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData Recipient="https://orgsync.invalid/saml/warm-up/acs" NotOnOrAfter="2026-12-04T05:35:43Z"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="2026-12-04T05:29:43Z" NotOnOrAfter="2026-12-04T05:35:43Z"><saml:AudienceRestriction><saml:Audience>https://orgsync.invalid/saml/warm-up/metadata</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="2026-12-04T05:30:43Z" SessionIndex="_2a1e97ccbfbca787a2d6fdc9479f1dc9"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement><saml:Attribute Name="email" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic"><saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">warm-up@orgsync.invalid</saml:AttributeValue></saml:Attribute><saml:Attribute Name="firstName" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic"><saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">Warm</saml:AttributeValue></saml:Attribute><saml:Attribute Name="lastName" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic"><saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">Up</saml:AttributeValue></saml:Attribute><saml:Attribute Name="groups" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic"><saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">warm-up</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion></samlp:Response>';

const SAMPLE_CONNECTION: SamlConnection = {
  organizationId: '00000000-0000-0000-0000-000000000000',
  id: '00000000-0000-0000-0000-000000000000',
  name: 'warm-up',
  idpEntityId: 'https://idp.orgsync.invalid/metadata',
  ssoUrl: 'https://idp.orgsync.invalid/sso',
  certificates: [SAMPLE_CERTIFICATE],
  attributeMapping: {},
  allowIdpInitiated: true,
  enabled: true,
  allowedReturnUrls: [],
  clockSkewSeconds: 0,
  updateProfile: false,
  metadataUrl: null,
  metadataRefreshedAt: null,
  metadataValidUntil: null,
  metadataNextRefreshAt: null,
  metadataError: null,
  metadataErrorAt: null,
  createdAt: SAMPLE_SIGNED_AT,
  updatedAt: SAMPLE_SIGNED_AT,
};
