import fs from 'node:fs';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  CONTENT_ENCRYPTION,
  IDP_ENTITY_ID,
  encode,
  encryptAssertion,
  makeIdpKeys,
  newId,
  responseXml,
  signAssertion,
  signResponse,
  type ResponseOptions,
} from './support/idp.ts';
import {
  lastAttempt,
  postResponse,
  samlFixture,
  sessionCookieOf,
  startLogin,
  type SamlFixture,
} from './support/setup.ts';

/**
 * Every refusal the SP owes, each with a crafted response signed (and encrypted) by the test IdP. A
 * test asserts the refusal, its reason in the SSO attempt log, the audit entry and on the error
 * page, and that no session was set. Sign-ins go through one browser (f.browser), whose cookies
 * the helpers carry.
 */
let f: SamlFixture;
beforeAll(async () => {
  f = await samlFixture();
});
afterAll(async () => f.ctx.database.close());

const base = (over: Partial<ResponseOptions> = {}): ResponseOptions => ({
  acsUrl: f.acsUrl,
  audience: f.audience,
  nameId: 'owner@acme.test',
  ...over,
});

async function expectRefused(xml: string, reason: string, relayState?: string) {
  const res = await postResponse(f, xml, relayState);
  const status = reason === 'oversized' ? 413 : 403;
  expect(res.status, `expected a refusal (${reason}), got ${res.status}: ${res.text.slice(0, 300)}`).toBe(status);
  expect(sessionCookieOf(res)).toBeUndefined();
  expect(res.text).toContain(`data-reason="${reason}"`);
  const attempt = await lastAttempt(f);
  expect(attempt).toMatchObject({ outcome: 'refused', reason });
  const [audit] = await f.ctx.sql<{ action: string; details: { reason: string; message: string } }[]>`
    select action, details from audit_log where organization_id = ${f.organization.id} order by id desc limit 1`;
  expect(audit).toMatchObject({ action: 'sso.refused', details: { reason, message: attempt!.message } });
  return { res, attempt: attempt! };
}

const admin = () => ({ authorization: `Bearer ${f.adminKey}` });
const changeConnection = (change: object) =>
  request(f.app).patch(`/api/saml/connections/${f.connectionId}`).set(admin()).send(change).expect(200);

async function expectAccepted(xml: string, relayState?: string) {
  const res = await postResponse(f, xml, relayState);
  expect(res.status, res.text.slice(0, 500)).toBe(303);
  expect(await lastAttempt(f)).toMatchObject({ outcome: 'success' });
  return res;
}

describe('a well-formed, correctly signed response', () => {
  it('is accepted (the baseline every refusal below bends)', async () => {
    await expectAccepted(signAssertion(responseXml(base()), f.idp));
  });

  it('is accepted within the clock skew (NotBefore one minute ahead)', async () => {
    await expectAccepted(signAssertion(responseXml(base({ notBefore: new Date(Date.now() + 60_000) })), f.idp));
  });
});

describe('signatures', () => {
  it('refuses an unsigned response', async () => {
    await expectRefused(responseXml(base()), 'signature_missing');
  });

  it('refuses a response signed by a certificate the connection does not trust', async () => {
    const other = makeIdpKeys('attacker');
    await expectRefused(signAssertion(responseXml(base()), other), 'unknown_certificate');
  });

  it('refuses a signed assertion changed after signing', async () => {
    const signed = signAssertion(
      responseXml(base({ nameId: 'someone@acme.test', attributes: { email: ['someone@acme.test'] } })),
      f.idp,
    );
    await expectRefused(signed.replaceAll('someone@acme.test', 'owner@acme.test'), 'signature_invalid');
  });

  it('refuses a signature without the certificate in KeyInfo made by another key', async () => {
    const other = makeIdpKeys('attacker');
    const signed = signAssertion(responseXml(base()), other).replace(/<ds:KeyInfo>[\s\S]*?<\/ds:KeyInfo>/g, '');
    await expectRefused(signed, 'signature_invalid');
  });

  it('refuses SHA-1 signatures', async () => {
    const { attempt } = await expectRefused(signAssertion(responseXml(base()), f.idp, 'sha1'), 'weak_algorithm');
    expect(attempt.message).toContain('signature algorithm not accepted: http://www.w3.org/2000/09/xmldsig#rsa-sha1');
  });

  it('refuses a SHA-1 digest under an RSA-SHA256 signature', async () => {
    const xml = signAssertion(responseXml(base()), f.idp, 'sha1-digest');
    expect(xml).toContain('<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>');
    const { attempt } = await expectRefused(xml, 'weak_algorithm');
    expect(attempt.message).toContain(
      'signature digest algorithm not accepted: http://www.w3.org/2000/09/xmldsig#sha1',
    );
  });
});

describe('encrypted assertions (encrypted for the SP certificate)', () => {
  let spCertificate: string;
  beforeAll(async () => {
    spCertificate = (await request(f.app).get('/api/saml/service-provider').set(admin()).expect(200)).body.certificate;
  });
  const SHA1_DIGEST = '<ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/>';

  it.each([
    ['a signed assertion', false],
    ['a signed assertion in a signed Response', true],
  ])(
    'accepts %s sent with RSA-OAEP and its SHA-1 digest written out (ADFS, Okta, Shibboleth)',
    async (_name, signTheResponse) => {
      const encrypted = encryptAssertion(signAssertion(responseXml(base()), f.idp), spCertificate, {
        oaepDigest: 'sha1',
      });
      const xml = signTheResponse ? signResponse(encrypted, f.idp) : encrypted;
      expect(xml).toContain(
        `<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p">${SHA1_DIGEST}</xenc:EncryptionMethod>`,
      );
      expect(xml).not.toContain('owner@acme.test');
      await expectAccepted(xml);
    },
  );

  it.each(['aes128-cbc', 'aes256-cbc', 'aes128-gcm', 'aes256-gcm'] as const)(
    'accepts %s content encryption',
    async (content) => {
      const xml = encryptAssertion(signAssertion(responseXml(base()), f.idp), spCertificate, { content });
      expect(xml).toContain(`<xenc:EncryptionMethod Algorithm="${CONTENT_ENCRYPTION[content].uri}"/>`);
      await expectAccepted(xml);
    },
  );

  it('refuses 3DES (tripledes-cbc) content encryption as weak, before decrypting', async () => {
    const warn = vi.spyOn(console, 'warn');
    try {
      const xml = encryptAssertion(signAssertion(responseXml(base()), f.idp), spCertificate, {
        content: 'tripledes-cbc',
      });
      expect(xml).toContain('<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#tripledes-cbc"/>');
      const { attempt } = await expectRefused(xml, 'weak_algorithm');
      expect(attempt.message).toBe(
        'content encryption algorithm not accepted: http://www.w3.org/2001/04/xmlenc#tripledes-cbc (use AES-128 or AES-256, CBC or GCM)',
      );
      // xml-encryption warns when it decrypts 3DES: it never got that far.
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
    }
  });

  it('refuses AES-192 content encryption, which the decryptor does not implement, saying so', async () => {
    const xml = encryptAssertion(signAssertion(responseXml(base()), f.idp), spCertificate, { content: 'aes192-cbc' });
    const { attempt } = await expectRefused(xml, 'decryption_failed');
    expect(attempt.message).toBe(
      'content encryption algorithm not supported: http://www.w3.org/2001/04/xmlenc#aes192-cbc (use AES-128 or AES-256, CBC or GCM)',
    );
  });

  it('refuses RSA 1.5 key transport', async () => {
    const xml = encryptAssertion(signAssertion(responseXml(base()), f.idp), spCertificate, { keyTransport: 'rsa-1_5' });
    const { attempt } = await expectRefused(xml, 'weak_algorithm');
    expect(attempt.message).toContain('key transport algorithm not accepted: http://www.w3.org/2001/04/xmlenc#rsa-1_5');
  });

  it('still refuses a SHA-1 signature digest inside the encrypted assertion (not the OAEP one)', async () => {
    const xml = encryptAssertion(signAssertion(responseXml(base()), f.idp, 'sha1-digest'), spCertificate, {
      oaepDigest: 'sha1',
    });
    const { attempt } = await expectRefused(xml, 'weak_algorithm');
    expect(attempt.message).toContain('signature digest algorithm not accepted');
  });

  it('refuses an assertion encrypted for another key', async () => {
    const otherSp = makeIdpKeys('another-sp');
    const xml = encryptAssertion(signAssertion(responseXml(base()), f.idp), fs.readFileSync(otherSp.certFile, 'utf8'));
    const { attempt } = await expectRefused(xml, 'decryption_failed');
    expect(attempt.message).toMatch(/cannot be decrypted/);
  });

  it('refuses an encrypted assertion signed by nobody', async () => {
    const { attempt } = await expectRefused(encryptAssertion(responseXml(base()), spCertificate), 'signature_missing');
    expect(attempt.message).toMatch(/neither the response nor the assertion is signed/);
  });

  it.each([
    ['assertion', false],
    ['Response', true],
  ])('refuses a decrypted assertion that breaks the schema (signed %s)', async (_name, signTheResponse) => {
    // A second Subject: the schema allows one, and a reader could take either.
    const twoSubjects = responseXml(base()).replace(
      '</saml:Subject>',
      '</saml:Subject><saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">evil@attacker.example</saml:NameID></saml:Subject>',
    );
    const xml = signTheResponse
      ? signResponse(encryptAssertion(twoSubjects, spCertificate), f.idp)
      : encryptAssertion(signAssertion(twoSubjects, f.idp), spCertificate);
    const { attempt } = await expectRefused(xml, 'schema_invalid');
    expect(attempt.message).toMatch(/^the decrypted assertion does not match the SAML 2\.0 schema/);
  });
});

describe('XML signature wrapping', () => {
  const evilAssertion = (id: string) =>
    responseXml(
      base({ nameId: 'evil@attacker.example', attributes: { email: ['evil@attacker.example'] }, assertionId: id }),
    ).match(/<saml:Assertion [\s\S]*<\/saml:Assertion>/)![0];
  const signedAssertionOf = (xml: string) => xml.match(/<saml:Assertion [\s\S]*<\/saml:Assertion>/)![0];

  it('refuses an unsigned evil assertion placed before the signed one', async () => {
    const signed = signAssertion(responseXml(base()), f.idp);
    const wrapped = signed.replace('<saml:Assertion ', `${evilAssertion(newId())}<saml:Assertion `);
    const { attempt } = await expectRefused(wrapped, 'signature_wrapping');
    expect(attempt.message).toMatch(/exactly one assertion/);
  });

  it('refuses an evil assertion whose signed original hides in the Response Extensions', async () => {
    const signed = signAssertion(responseXml(base()), f.idp);
    const original = signedAssertionOf(signed);
    const wrapped = signed
      .replace(original, evilAssertion(newId()))
      .replace('<samlp:Status>', `<samlp:Extensions>${original}</samlp:Extensions><samlp:Status>`);
    await expectRefused(wrapped, 'signature_wrapping');
  });

  it('refuses an evil assertion with the same ID that carries the signed original in its Advice', async () => {
    const signed = signAssertion(responseXml(base()), f.idp);
    const original = signedAssertionOf(signed);
    const id = /ID="([^"]+)"/.exec(original)![1]!;
    const evil = evilAssertion(id).replace(
      '</saml:Conditions>',
      `</saml:Conditions><saml:Advice>${original}</saml:Advice>`,
    );
    const wrapped = signed.replace(original, evil);
    await expectRefused(wrapped, 'signature_wrapping');
  });

  it('refuses a new Response wrapping the signed original Response inside its signature (XSW1)', async () => {
    const signed = signResponse(responseXml(base()), f.idp);
    const signature = signed.match(/<ds:Signature [\s\S]*?<\/ds:Signature>/)![0];
    const evil = responseXml(
      base({ nameId: 'evil@attacker.example', attributes: { email: ['evil@attacker.example'] } }),
    );
    const evilWithSignature = evil.replace(
      /(<samlp:Response [^>]*><saml:Issuer>[^<]*<\/saml:Issuer>)/,
      `$1${signature.replace('</ds:Signature>', `<ds:Object>${signed}</ds:Object></ds:Signature>`)}`,
    );
    await expectRefused(evilWithSignature, 'signature_wrapping');
  });

  it('refuses a signature that references an element other than its parent', async () => {
    const signed = signAssertion(responseXml(base()), f.idp);
    const assertionId = /<saml:Assertion ID="([^"]+)"/.exec(signed)![1]!;
    // Move the assertion's signature up to the Response, still pointing at the assertion.
    const signature = signed.match(/<ds:Signature [\s\S]*?<\/ds:Signature>/)![0];
    const moved = signed
      .replace(signature, '')
      .replace(/(<samlp:Response [^>]*><saml:Issuer>[^<]*<\/saml:Issuer>)/, `$1${signature}`);
    expect(moved).toContain(`URI="#${assertionId}"`);
    await expectRefused(moved, 'signature_wrapping');
  });

  it('refuses a comment inside the NameID (truncation attack)', async () => {
    const xml = signAssertion(
      responseXml(base({ nameIdXml: 'owner@acme.test<!---->.attacker.example', attributes: { other: ['x'] } })),
      f.idp,
    );
    await expectRefused(xml, 'comment_in_assertion');
  });
});

describe('issuer, audience, recipient, destination', () => {
  it('refuses an issuer no connection trusts', async () => {
    const { attempt } = await expectRefused(
      signAssertion(responseXml(base({ issuer: 'https://evil.example/idp' })), f.idp),
      'unknown_issuer',
    );
    expect(attempt.message).toContain('https://evil.example/idp');
  });

  it('refuses a signed assertion from another issuer inside a response claiming ours', async () => {
    await expectRefused(
      signAssertion(responseXml(base({ assertionIssuer: 'https://other.example/idp' })), f.idp),
      'wrong_issuer',
    );
  });

  it('refuses an assertion meant for another SP (audience)', async () => {
    await expectRefused(
      signAssertion(responseXml(base({ audience: 'https://other-sp.example/metadata' })), f.idp),
      'wrong_audience',
    );
  });

  it('refuses an assertion for another recipient', async () => {
    await expectRefused(
      signAssertion(responseXml(base({ recipient: 'https://other-sp.example/acs' })), f.idp),
      'wrong_recipient',
    );
  });

  it('refuses a response sent to another destination', async () => {
    await expectRefused(
      signAssertion(responseXml(base({ destination: 'https://other-sp.example/acs' })), f.idp),
      'wrong_destination',
    );
  });

  it('refuses a signed Response without a Destination (SAML bindings 3.5.5.2)', async () => {
    const { attempt } = await expectRefused(
      signResponse(responseXml(base({ destination: null })), f.idp),
      'wrong_destination',
    );
    expect(attempt.message).toMatch(/^the signed Response has no Destination/);
  });

  it('accepts an unsigned Response without a Destination around a signed assertion', async () => {
    await expectAccepted(signAssertion(responseXml(base({ destination: null })), f.idp));
  });

  it("refuses an assertion for another organization's ACS on this organization", async () => {
    const other = 'https://orgsync.test/saml/globex/acs';
    await expectRefused(
      signAssertion(responseXml(base({ destination: other, recipient: other })), f.idp),
      'wrong_destination',
    );
  });
});

describe('time window', () => {
  it('refuses an expired assertion', async () => {
    const past = new Date(Date.now() - 10 * 60_000);
    await expectRefused(
      signAssertion(responseXml(base({ notOnOrAfter: past, confirmationNotOnOrAfter: past })), f.idp),
      'expired',
    );
  });

  it('refuses an assertion whose bearer confirmation has expired', async () => {
    await expectRefused(
      signAssertion(responseXml(base({ confirmationNotOnOrAfter: new Date(Date.now() - 10 * 60_000) })), f.idp),
      'expired',
    );
  });

  it('refuses an assertion not yet valid (beyond the clock skew)', async () => {
    await expectRefused(
      signAssertion(responseXml(base({ notBefore: new Date(Date.now() + 10 * 60_000) })), f.idp),
      'not_yet_valid',
    );
  });

  it('refuses an assertion whose IdP session has ended (SessionNotOnOrAfter)', async () => {
    const xml = signAssertion(responseXml(base({ sessionNotOnOrAfter: new Date(Date.now() - 10 * 60_000) })), f.idp);
    const { attempt } = await expectRefused(xml, 'expired');
    expect(attempt.message).toContain('SessionNotOnOrAfter');
  });

  it("applies the connection's clock skew: none refuses NotBefore a minute ahead, the default accepts it", async () => {
    const minuteAhead = () => signAssertion(responseXml(base({ notBefore: new Date(Date.now() + 60_000) })), f.idp);
    const connection = await request(f.app).get(`/api/saml/connections/${f.connectionId}`).set(admin()).expect(200);
    expect(connection.body.clockSkewSeconds).toBe(120);
    await changeConnection({ clockSkewSeconds: 0 });
    try {
      const { attempt } = await expectRefused(minuteAhead(), 'not_yet_valid');
      expect(attempt.message).toMatch(/valid only from/);
    } finally {
      await changeConnection({ clockSkewSeconds: 120 });
    }
    await expectAccepted(minuteAhead());
  });
});

describe('InResponseTo and replay', () => {
  it('refuses an InResponseTo this SP never sent', async () => {
    await expectRefused(signAssertion(responseXml(base({ inResponseTo: newId() })), f.idp), 'in_response_to_mismatch');
  });

  it('refuses an answer to a request that has expired', async () => {
    const requestId = await startLogin(f);
    await f.ctx
      .sql`update saml_requests set expires_at = now() - interval '1 second' where organization_id = ${f.organization.id} and id = ${requestId}`;
    const { attempt } = await expectRefused(
      signAssertion(responseXml(base({ inResponseTo: requestId })), f.idp),
      'in_response_to_mismatch',
    );
    expect(attempt.message).toMatch(/no pending sign-in request of this connection/);
  });

  it('refuses an answer to a request sent through another connection', async () => {
    const secondIssuer = 'https://second.example/idp';
    const second = await request(f.app)
      .post('/api/saml/connections')
      .set(admin())
      .send({
        name: 'Second',
        idpEntityId: secondIssuer,
        ssoUrl: 'https://second.example/sso',
        certificates: [f.idp.certificate],
      })
      .expect(201);
    try {
      const requestId = await startLogin(f, '/app', f.browser, { connection: second.body.id });
      const { attempt } = await expectRefused(
        signAssertion(responseXml(base({ inResponseTo: requestId })), f.idp),
        'in_response_to_mismatch',
      );
      expect(attempt.message).toMatch(/no pending sign-in request of this connection/);
      // The request is still pending for the connection it was sent through.
      await expectAccepted(signAssertion(responseXml(base({ inResponseTo: requestId, issuer: secondIssuer })), f.idp));
    } finally {
      await request(f.app).delete(`/api/saml/connections/${second.body.id}`).set(admin()).expect(204);
    }
  });

  it('refuses a second answer to the same request', async () => {
    const requestId = await startLogin(f);
    await expectAccepted(signAssertion(responseXml(base({ inResponseTo: requestId })), f.idp));
    await expectRefused(
      signAssertion(responseXml(base({ inResponseTo: requestId })), f.idp),
      'in_response_to_mismatch',
    );
  });

  it('refuses an InResponseTo only in the unsigned Response that differs from the signed one', async () => {
    const requestId = await startLogin(f);
    const xml = signAssertion(responseXml(base({ inResponseTo: requestId })), f.idp).replace(
      /(<samlp:Response [^>]*?)InResponseTo="[^"]+"/,
      `$1InResponseTo="${newId()}"`,
    );
    await expectRefused(xml, 'in_response_to_mismatch');
  });

  it('refuses a replayed assertion', async () => {
    const xml = signAssertion(responseXml(base()), f.idp);
    await expectAccepted(xml);
    await expectRefused(xml, 'replayed_assertion');
  });

  it('refuses an unsolicited response when IdP-initiated sign-in is off', async () => {
    await request(f.app)
      .patch(`/api/saml/connections/${f.connectionId}`)
      .set('authorization', `Bearer ${f.adminKey}`)
      .send({ allowIdpInitiated: false })
      .expect(200);
    try {
      await expectRefused(signAssertion(responseXml(base()), f.idp), 'unsolicited_response');
      const requestId = await startLogin(f);
      await expectAccepted(signAssertion(responseXml(base({ inResponseTo: requestId })), f.idp));
    } finally {
      await request(f.app)
        .patch(`/api/saml/connections/${f.connectionId}`)
        .set('authorization', `Bearer ${f.adminKey}`)
        .send({ allowIdpInitiated: true })
        .expect(200);
    }
  });
});

describe('status, XML hazards, size, schema', () => {
  it('refuses a non-success status even with a signed assertion attached', async () => {
    const xml = signAssertion(responseXml(base({ status: 'urn:oasis:names:tc:SAML:2.0:status:Responder' })), f.idp);
    const { attempt } = await expectRefused(xml, 'status_not_success');
    expect(attempt.message).toContain('Responder');
  });

  it('refuses a DOCTYPE (entity expansion / XXE)', async () => {
    const xml = signAssertion(responseXml(base()), f.idp);
    const withDoctype = `<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>${xml.replace('owner@acme.test</saml:NameID>', '&x;</saml:NameID>')}`;
    await expectRefused(withDoctype, 'doctype');
  });

  it('refuses an oversized message', async () => {
    const xml = signAssertion(
      responseXml(base({ attributes: { email: ['owner@acme.test'], padding: ['x'.repeat(300 * 1024)] } })),
      f.idp,
    );
    await expectRefused(xml, 'oversized');
  });

  it('refuses a response that does not match the schema', async () => {
    const xml = signResponse(responseXml(base()), f.idp).replace('<samlp:Status>', '<samlp:Unexpected/><samlp:Status>');
    await expectRefused(xml, 'schema_invalid');
  });

  it('refuses something that is not XML', async () => {
    await expectRefused('<samlp:Response', 'malformed');
    const res = await request(f.app).post('/saml/acme/acs').type('form').send({ SAMLResponse: '%%%not base64' });
    expect(res.status).toBe(403);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'refused', reason: 'malformed' });
  });
});

describe('where the browser goes afterwards', () => {
  it('refuses a RelayState outside the allowed return URLs', async () => {
    await expectRefused(
      signAssertion(responseXml(base()), f.idp),
      'relay_state_not_allowed',
      'https://evil.example/phish',
    );
    await expectRefused(signAssertion(responseXml(base()), f.idp), 'relay_state_not_allowed', '//evil.example/phish');
  });

  it('follows a relative RelayState and refuses an open redirect at login', async () => {
    const res = await expectAccepted(signAssertion(responseXml(base()), f.idp), '/dashboard');
    expect(res.headers.location).toBe('https://orgsync.test/dashboard');
    const login = await request(f.app).get('/saml/acme/login').query({ returnTo: 'https://evil.example/' });
    expect(login.status).toBe(400);
    expect(login.text).toContain('data-reason="relay_state_not_allowed"');
  });

  it('allows return URLs the connection lists', async () => {
    await request(f.app)
      .patch(`/api/saml/connections/${f.connectionId}`)
      .set('authorization', `Bearer ${f.adminKey}`)
      .send({ allowedReturnUrls: ['https://app.acme.example/'] })
      .expect(200);
    const res = await expectAccepted(signAssertion(responseXml(base()), f.idp), 'https://app.acme.example/projects');
    expect(res.headers.location).toBe('https://app.acme.example/projects');
    await expectRefused(
      signAssertion(responseXml(base()), f.idp),
      'relay_state_not_allowed',
      'https://app.acme.example.evil.example/',
    );
  });
});

describe('connection state', () => {
  it('refuses sign-in through a disabled connection', async () => {
    await request(f.app)
      .patch(`/api/saml/connections/${f.connectionId}`)
      .set('authorization', `Bearer ${f.adminKey}`)
      .send({ enabled: false })
      .expect(200);
    try {
      await expectRefused(signAssertion(responseXml(base()), f.idp), 'connection_disabled');
    } finally {
      await request(f.app)
        .patch(`/api/saml/connections/${f.connectionId}`)
        .set('authorization', `Bearer ${f.adminKey}`)
        .send({ enabled: true })
        .expect(200);
    }
  });

  it('trusts a second certificate during a rotation', async () => {
    const next = makeIdpKeys('next');
    await request(f.app)
      .patch(`/api/saml/connections/${f.connectionId}`)
      .set('authorization', `Bearer ${f.adminKey}`)
      .send({ certificates: [f.idp.certificate, next.certificate] })
      .expect(200);
    await expectAccepted(signAssertion(responseXml(base()), next));
    await expectAccepted(signAssertion(responseXml(base()), f.idp));
    expect(IDP_ENTITY_ID).toBe('https://idp.example.test/metadata');
  });

  it('answers an error page for an unknown organization', async () => {
    const res = await request(f.app)
      .post('/saml/nope/acs')
      .type('form')
      .send({ SAMLResponse: encode('<x/>') });
    expect(res.status).toBe(404);
  });
});

describe('several instances on one database', () => {
  it.skipIf(!process.env.DATABASE_URL)(
    'accepts an assertion once when it reaches two instances at the same time',
    async () => {
      const { connect } = await import('../../src/storage/database.ts');
      const { createApp } = await import('../../src/app.ts');
      const url = (f.ctx.database as unknown as { url: string }).url;
      const otherSql = connect(url, 2);
      try {
        const other = createApp({ ...f.ctx, sql: otherSql, database: { ...f.ctx.database, sql: otherSql } });
        const xml = signAssertion(responseXml(base()), f.idp);
        const form = { SAMLResponse: encode(xml) };
        const answers = await Promise.all([
          request(f.app).post('/saml/acme/acs').type('form').send(form),
          request(other).post('/saml/acme/acs').type('form').send(form),
        ]);
        expect(answers.map((a) => a.status).sort()).toEqual([303, 403]);
        expect(answers.find((a) => a.status === 403)!.text).toContain('data-reason="replayed_assertion"');
      } finally {
        await otherSql.end({ timeout: 5 });
      }
    },
  );
});
