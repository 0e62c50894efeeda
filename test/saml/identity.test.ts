import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor } from '../../src/core/actor.ts';
import { joinOrganization } from '../../src/core/memberships.ts';
import { MAX_XML_DEPTH, xmlDepth } from '../../src/saml/xml.ts';
import { responseXml, signAssertion, type ResponseOptions } from './support/idp.ts';
import { lastAttempt, postResponse, samlFixture, sessionCookieOf, type SamlFixture } from './support/setup.ts';

/**
 * The identity a sign-in is matched on (the email) must be unambiguous, profile attributes do not
 * rename an existing account unless the connection says so, and XML too deep for a recursive walk
 * is refused before any walk.
 */
let f: SamlFixture;
const OWNER = 'owner@acme.test';
const MALLORY = 'mallory@acme.test';

beforeAll(async () => {
  f = await samlFixture();
  // Mallory is an ordinary member; the owner has a name of their own.
  const mallory = await ensureAccount(f.ctx.sql, { email: MALLORY, givenName: 'Mallory', familyName: 'M' });
  await joinOrganization(
    f.ctx.sql,
    { organizationId: f.organization.id, accountId: mallory.id, source: 'admin' },
    systemActor('admin'),
  );
  await f.ctx.sql`update accounts set given_name = 'Olivia', family_name = 'Owner' where lower(email) = ${OWNER}`;
});
afterAll(async () => f.ctx.database.close());

const base = (over: Partial<ResponseOptions> = {}): ResponseOptions => ({
  acsUrl: f.acsUrl,
  audience: f.audience,
  nameId: MALLORY,
  ...over,
});

const nameOf = async (email: string) =>
  (
    await f.ctx.sql<{ givenName: string | null; familyName: string | null }[]>`
      select given_name, family_name from accounts where lower(email) = ${email}`
  )[0];

async function expectRefused(xml: string, reason: string, message: RegExp) {
  const res = await postResponse(f, xml);
  expect(res.status, res.text.slice(0, 300)).toBe(403);
  expect(sessionCookieOf(res)).toBeUndefined();
  expect(res.text).toContain(`data-reason="${reason}"`);
  const attempt = await lastAttempt(f);
  expect(attempt).toMatchObject({ outcome: 'refused', reason });
  expect(attempt!.message).toMatch(message);
}

/** Adds a second `<saml:Attribute Name="email">` (IdPs may repeat an attribute instead of its values). */
const withSecondEmailAttribute = (xml: string, email: string) =>
  xml.replace(
    '</saml:AttributeStatement>',
    `<saml:Attribute Name="email"><saml:AttributeValue>${email}</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>`,
  );

describe('an assertion naming more than one identity', () => {
  it("is refused when two email attributes disagree, the owner's address first; the owner keeps their name", async () => {
    const xml = withSecondEmailAttribute(
      responseXml(base({ attributes: { email: [OWNER], firstName: ['Eve'] } })),
      MALLORY,
    );
    await expectRefused(signAssertion(xml, f.idp), 'ambiguous_identity', /2 different email addresses/);
    expect(await nameOf(OWNER)).toEqual({ givenName: 'Olivia', familyName: 'Owner' });
  });

  it('is refused when one email attribute carries two addresses, or email and mail disagree', async () => {
    await expectRefused(
      signAssertion(responseXml(base({ attributes: { email: [OWNER, MALLORY] } })), f.idp),
      'ambiguous_identity',
      /different email addresses/,
    );
    await expectRefused(
      signAssertion(responseXml(base({ attributes: { mail: [MALLORY], email: [OWNER] } })), f.idp),
      'ambiguous_identity',
      /different email addresses/,
    );
  });

  it('is refused when the email attribute disagrees with an emailAddress NameID', async () => {
    await expectRefused(
      signAssertion(responseXml(base({ nameId: MALLORY, attributes: { email: [OWNER] } })), f.idp),
      'ambiguous_identity',
      /disagrees with the emailAddress NameID/,
    );
  });

  it('is refused when the Subject carries two NameIDs', async () => {
    const xml = responseXml(base()).replace(
      '</saml:NameID>',
      `</saml:NameID><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">${OWNER}</saml:NameID>`,
    );
    await expectRefused(signAssertion(xml, f.idp), 'ambiguous_identity', /names 2 identities/);
  });

  it('signs in when the repeated values are one address (case aside)', async () => {
    const xml = withSecondEmailAttribute(
      responseXml(base({ attributes: { email: [MALLORY], mail: ['Mallory@ACME.test'] } })),
      MALLORY.toUpperCase(),
    );
    const res = await postResponse(f, signAssertion(xml, f.idp));
    expect(res.status, res.text.slice(0, 300)).toBe(303);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'success', email: MALLORY });
  });
});

describe('profile attributes', () => {
  it('do not rename an existing account unless the connection is set to update profiles', async () => {
    const signIn = async () => {
      const xml = responseXml(base({ attributes: { email: [MALLORY], firstName: ['Renamed'], lastName: ['ByIdp'] } }));
      expect((await postResponse(f, signAssertion(xml, f.idp))).status).toBe(303);
    };
    await signIn();
    expect(await nameOf(MALLORY)).toEqual({ givenName: 'Mallory', familyName: 'M' });

    const admin = { authorization: `Bearer ${f.adminKey}` };
    const patched = await request(f.app)
      .patch(`/api/saml/connections/${f.connectionId}`)
      .set(admin)
      .send({ updateProfile: true })
      .expect(200);
    expect(patched.body.updateProfile).toBe(true);
    await signIn();
    expect(await nameOf(MALLORY)).toEqual({ givenName: 'Renamed', familyName: 'ByIdp' });
    await request(f.app)
      .patch(`/api/saml/connections/${f.connectionId}`)
      .set(admin)
      .send({ updateProfile: 'yes' })
      .expect(400);
  });
});

describe('deeply nested XML', () => {
  it('is refused as xml_too_deep, in the attempt log, before any walk (no stack overflow)', async () => {
    const depth = 10_000;
    const xml = responseXml(base()).replace(
      '<saml:AttributeStatement>',
      `<saml:AttributeStatement><saml:Attribute Name="deep"><saml:AttributeValue>${'<x a="/>">'.repeat(depth)}${'</x>'.repeat(depth)}</saml:AttributeValue></saml:Attribute>`,
    );
    await expectRefused(xml, 'xml_too_deep', new RegExp(`more than ${MAX_XML_DEPTH} deep`));
  });

  it('counts depth through comments, CDATA, quoted ">" and "/>", and self-closing tags', () => {
    expect(xmlDepth('<a><b/><c x="/>"><!-- <d> --><![CDATA[<e>]]><?pi <f>?></c></a>')).toBe(2);
    expect(xmlDepth(`<r>${'<i>'.repeat(100)}`)).toBe(MAX_XML_DEPTH + 1); // stops counting past the limit
  });
});
