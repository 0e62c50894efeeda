import crypto from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptAssertion, esc, newId, signAssertion, signResponse } from './support/idp.ts';
import { lastAttempt, postResponse, samlFixture, startLogin, type SamlFixture } from './support/setup.ts';

/**
 * Responses shaped like each vendor's real output, written by hand from the vendors' documented
 * examples (namespace prefixes, ID styles, Issuer, NameID format, attribute names and value
 * types, statement order, which element is signed) and signed by the test IdP. No network: each
 * goes through the ACS as the browser would post it, SP-initiated.
 */
let f: SamlFixture;
let spCertificate: string;
beforeAll(async () => {
  f = await samlFixture();
  spCertificate = (await request(f.app).get('/api/saml/service-provider').set(admin()).expect(200)).body.certificate;
});
afterAll(async () => f.ctx.database.close());

const admin = () => ({ authorization: `Bearer ${f.adminKey}` });
const iso = (d: Date) => d.toISOString();
const XS = 'xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"';
const EMAIL = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';
const UNSPECIFIED = 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified';
const PERSISTENT = 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent';
const ENTITY = 'urn:oasis:names:tc:SAML:2.0:nameid-format:entity';
const BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';
const SUCCESS = 'urn:oasis:names:tc:SAML:2.0:status:Success';
const PPT = 'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport';

/** What a vendor builder gets: where the response goes and whom it is for. */
interface Context {
  issuer: string;
  acsUrl: string;
  audience: string;
  inResponseTo: string;
  /** The person: email, name parts, groups. */
  email: string;
  givenName: string;
  familyName: string;
  groups: string[];
}

const times = () => {
  const now = Date.now();
  return {
    now: iso(new Date(now)),
    notBefore: iso(new Date(now - 60_000)),
    notOnOrAfter: iso(new Date(now + 5 * 60_000)),
    session: iso(new Date(now + 8 * 3600_000)),
  };
};

/** A SAML Attribute with the given element prefix, NameFormat and value type. */
function attribute(
  p: string,
  name: string,
  values: string[],
  o: { nameFormat?: string; typed?: boolean; friendlyName?: string } = {},
) {
  const nameFormat = o.nameFormat ? ` NameFormat="${o.nameFormat}"` : '';
  const friendly = o.friendlyName ? ` FriendlyName="${o.friendlyName}"` : '';
  const value = (v: string) =>
    o.typed
      ? `<${p}AttributeValue ${XS} xsi:type="xs:string">${esc(v)}</${p}AttributeValue>`
      : `<${p}AttributeValue>${esc(v)}</${p}AttributeValue>`;
  return `<${p}Attribute Name="${esc(name)}"${friendly}${nameFormat}>${values.map(value).join('')}</${p}Attribute>`;
}

/** Subject, Conditions with a bearer confirmation, in the assertion's prefix. */
function subjectAndConditions(p: string, c: Context, nameId: string, format: string, t: ReturnType<typeof times>) {
  return (
    `<${p}Subject><${p}NameID Format="${format}">${esc(nameId)}</${p}NameID>` +
    `<${p}SubjectConfirmation Method="${BEARER}"><${p}SubjectConfirmationData InResponseTo="${c.inResponseTo}" NotOnOrAfter="${t.notOnOrAfter}" Recipient="${c.acsUrl}"/></${p}SubjectConfirmation></${p}Subject>` +
    `<${p}Conditions NotBefore="${t.notBefore}" NotOnOrAfter="${t.notOnOrAfter}"><${p}AudienceRestriction><${p}Audience>${c.audience}</${p}Audience></${p}AudienceRestriction></${p}Conditions>`
  );
}

const authnStatement = (p: string, t: ReturnType<typeof times>, classRef: string, sessionEnd = '') =>
  `<${p}AuthnStatement AuthnInstant="${t.now}"${sessionEnd} SessionIndex="${newId()}"><${p}AuthnContext><${p}AuthnContextClassRef>${classRef}</${p}AuthnContextClassRef></${p}AuthnContext></${p}AuthnStatement>`;

interface Vendor {
  name: string;
  issuer: string;
  /** The connection's attribute mapping, when the vendor's names are the admin's choice. */
  attributeMapping?: Record<string, string>;
  /** Unsigned XML; then `sign` signs it where the vendor does. */
  build(c: Context): string;
  sign(xml: string): string;
  /** The NameID, when it is not the email. */
  nameId?: string;
}

const vendors: Vendor[] = [
  {
    // Okta (developer docs, "SAML assertion" example): saml2p/saml2 prefixes (OpenSAML), "id…" ids,
    // Issuer with the entity Format, NameID unspecified (the Okta username, an email),
    // attribute statements named by the admin with NameFormat unspecified and xs:string values.
    // Response and assertion both signed (Okta's defaults).
    name: 'Okta',
    issuer: 'http://www.okta.com/exk1fcia6d6EMsf331d8',
    build: (c) => {
      const t = times();
      const p = 'saml2:';
      const unspecified = 'urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified';
      return (
        `<saml2p:Response xmlns:saml2p="urn:oasis:names:tc:SAML:2.0:protocol" Destination="${c.acsUrl}" ID="id${okId()}" InResponseTo="${c.inResponseTo}" IssueInstant="${t.now}" Version="2.0">` +
        `<saml2:Issuer xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" Format="${ENTITY}">${c.issuer}</saml2:Issuer>` +
        `<saml2p:Status><saml2p:StatusCode Value="${SUCCESS}"/></saml2p:Status>` +
        `<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" ID="id${okId()}" IssueInstant="${t.now}" Version="2.0">` +
        `<saml2:Issuer Format="${ENTITY}">${c.issuer}</saml2:Issuer>` +
        subjectAndConditions(p, c, c.email, UNSPECIFIED, t) +
        authnStatement(p, t, PPT) +
        `<saml2:AttributeStatement>` +
        attribute(p, 'email', [c.email], { nameFormat: unspecified, typed: true }) +
        attribute(p, 'firstName', [c.givenName], { nameFormat: unspecified, typed: true }) +
        attribute(p, 'lastName', [c.familyName], { nameFormat: unspecified, typed: true }) +
        attribute(p, 'groups', c.groups, { nameFormat: unspecified, typed: true }) +
        `</saml2:AttributeStatement></saml2:Assertion></saml2p:Response>`
      );
    },
    sign: (xml) => signResponse(signAssertion(xml, f.idp), f.idp),
  },
  {
    // Microsoft Entra ID ("Single sign-on SAML protocol"): samlp Response, the assertion in the
    // default namespace, Issuer https://sts.windows.net/{tenant}/, a persistent pairwise NameID,
    // claim-URI attributes without NameFormat or xsi:type, AttributeStatement before
    // AuthnStatement, group object ids. Assertion signed (Entra's default).
    name: 'Entra ID',
    issuer: 'https://sts.windows.net/82869000-6ad1-48f0-8171-272ed18796e9/',
    nameId: 'm_H3naDei2LNxUmEcWd0BZlNi_jVET1pMLR6iQSuYmo',
    build: (c) => {
      const t = times();
      const claims = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims';
      return (
        `<samlp:Response ID="_${crypto.randomUUID()}" Version="2.0" IssueInstant="${t.now}" Destination="${c.acsUrl}" InResponseTo="${c.inResponseTo}" xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">` +
        `<Issuer xmlns="urn:oasis:names:tc:SAML:2.0:assertion">${c.issuer}</Issuer>` +
        `<samlp:Status><samlp:StatusCode Value="${SUCCESS}"/></samlp:Status>` +
        `<Assertion ID="_${crypto.randomUUID()}" IssueInstant="${t.now}" Version="2.0" xmlns="urn:oasis:names:tc:SAML:2.0:assertion">` +
        `<Issuer>${c.issuer}</Issuer>` +
        subjectAndConditions('', c, 'm_H3naDei2LNxUmEcWd0BZlNi_jVET1pMLR6iQSuYmo', PERSISTENT, t) +
        `<AttributeStatement>` +
        attribute('', 'http://schemas.microsoft.com/identity/claims/tenantid', [
          '82869000-6ad1-48f0-8171-272ed18796e9',
        ]) +
        attribute('', 'http://schemas.microsoft.com/identity/claims/objectidentifier', [crypto.randomUUID()]) +
        attribute('', `${claims}/givenname`, [c.givenName]) +
        attribute('', `${claims}/surname`, [c.familyName]) +
        attribute('', `${claims}/emailaddress`, [c.email]) +
        attribute('', `${claims}/name`, [c.email]) +
        attribute('', 'http://schemas.microsoft.com/ws/2008/06/identity/claims/groups', c.groups) +
        `</AttributeStatement>` +
        authnStatement('', t, 'urn:oasis:names:tc:SAML:2.0:ac:classes:Password') +
        `</Assertion></samlp:Response>`
      );
    },
    sign: (xml) => signAssertion(xml, f.idp),
  },
  {
    // AD FS: samlp Response with a Consent attribute, the assertion in the default namespace,
    // Issuer http://{host}/adfs/services/trust, NameID emailAddress, claim-URI attributes (the
    // group claim http://schemas.xmlsoap.org/claims/Group). Assertion signed (AD FS's
    // AssertionOnly default) and, as AD FS does when the SP metadata has an encryption key,
    // encrypted: AES-256-CBC with RSA-OAEP whose SHA-1 digest is written out.
    name: 'AD FS',
    issuer: 'http://adfs.acme.test/adfs/services/trust',
    build: (c) => {
      const t = times();
      const claims = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims';
      return (
        `<samlp:Response ID="_${crypto.randomUUID()}" Version="2.0" IssueInstant="${t.now}" Destination="${c.acsUrl}" Consent="urn:oasis:names:tc:SAML:2.0:consent:unspecified" InResponseTo="${c.inResponseTo}" xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">` +
        `<Issuer xmlns="urn:oasis:names:tc:SAML:2.0:assertion">${c.issuer}</Issuer>` +
        `<samlp:Status><samlp:StatusCode Value="${SUCCESS}"/></samlp:Status>` +
        `<Assertion ID="_${crypto.randomUUID()}" IssueInstant="${t.now}" Version="2.0" xmlns="urn:oasis:names:tc:SAML:2.0:assertion">` +
        `<Issuer>${c.issuer}</Issuer>` +
        subjectAndConditions('', c, c.email, EMAIL, t) +
        `<AttributeStatement>` +
        attribute('', `${claims}/emailaddress`, [c.email]) +
        attribute('', `${claims}/givenname`, [c.givenName]) +
        attribute('', `${claims}/surname`, [c.familyName]) +
        attribute('', 'http://schemas.xmlsoap.org/claims/Group', c.groups) +
        `</AttributeStatement>` +
        authnStatement('', t, PPT) +
        `</Assertion></samlp:Response>`
      );
    },
    sign: (xml) => encryptAssertion(signAssertion(xml, f.idp), spCertificate, { oaepDigest: 'sha1' }),
  },
  {
    // Google Workspace (custom SAML app): saml2p/saml2 prefixes, Issuer
    // https://accounts.google.com/o/saml2?idpid=…, NameID emailAddress (the primary email),
    // AuthnContextClassRef unspecified, attributes only as the admin maps them (plain names,
    // untyped values). "Signed response" on: the Response alone is signed.
    name: 'Google Workspace',
    issuer: 'https://accounts.google.com/o/saml2?idpid=C01abc2de',
    build: (c) => {
      const t = times();
      const p = 'saml2:';
      return (
        `<saml2p:Response xmlns:saml2p="urn:oasis:names:tc:SAML:2.0:protocol" Destination="${c.acsUrl}" ID="_${randomHex(16)}" InResponseTo="${c.inResponseTo}" IssueInstant="${t.now}" Version="2.0">` +
        `<saml2:Issuer xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion">${esc(c.issuer)}</saml2:Issuer>` +
        `<saml2p:Status><saml2p:StatusCode Value="${SUCCESS}"/></saml2p:Status>` +
        `<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" ID="_${randomHex(16)}" IssueInstant="${t.now}" Version="2.0">` +
        `<saml2:Issuer>${esc(c.issuer)}</saml2:Issuer>` +
        subjectAndConditions(p, c, c.email, EMAIL, t) +
        `<saml2:AttributeStatement>` +
        attribute(p, 'firstName', [c.givenName]) +
        attribute(p, 'lastName', [c.familyName]) +
        attribute(p, 'groups', c.groups) +
        `</saml2:AttributeStatement>` +
        authnStatement(p, t, 'urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified') +
        `</saml2:Assertion></saml2p:Response>`
      );
    },
    sign: (xml) => signResponse(xml, f.idp),
  },
  {
    // OneLogin: samlp/saml prefixes declared on the Response (and again on the assertion),
    // "R…" response and "pfx…" assertion ids, Issuer https://app.onelogin.com/saml/metadata/…,
    // NameID emailAddress, SessionNotOnOrAfter, basic attributes User.email, User.FirstName,
    // User.LastName and a multi-value memberOf (mapped by the admin on the connection). Assertion
    // signed (the default "SAML signature element").
    name: 'OneLogin',
    issuer: 'https://app.onelogin.com/saml/metadata/6d6bb0a6-2b5a-4a1c-9b6e-3a8f7c1f0f11',
    attributeMapping: {
      email: 'User.email',
      firstName: 'User.FirstName',
      lastName: 'User.LastName',
      groups: 'memberOf',
    },
    build: (c) => {
      const t = times();
      const p = 'saml:';
      const basic = 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic';
      return (
        `<samlp:Response xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="R${randomHex(20)}" Version="2.0" IssueInstant="${t.now}" Destination="${c.acsUrl}" InResponseTo="${c.inResponseTo}">` +
        `<saml:Issuer>${c.issuer}</saml:Issuer>` +
        `<samlp:Status><samlp:StatusCode Value="${SUCCESS}"/></samlp:Status>` +
        `<saml:Assertion xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" Version="2.0" ID="pfx${crypto.randomUUID()}" IssueInstant="${t.now}">` +
        `<saml:Issuer>${c.issuer}</saml:Issuer>` +
        subjectAndConditions(p, c, c.email, EMAIL, t) +
        authnStatement(p, t, PPT, ` SessionNotOnOrAfter="${t.session}"`) +
        `<saml:AttributeStatement>` +
        attribute(p, 'User.email', [c.email], { nameFormat: basic, typed: true }) +
        attribute(p, 'User.FirstName', [c.givenName], { nameFormat: basic, typed: true }) +
        attribute(p, 'User.LastName', [c.familyName], { nameFormat: basic, typed: true }) +
        attribute(p, 'memberOf', c.groups, { nameFormat: basic, typed: true }) +
        `</saml:AttributeStatement></saml:Assertion></samlp:Response>`
      );
    },
    sign: (xml) => signAssertion(xml, f.idp),
  },
  {
    // JumpCloud: saml2p/saml2 prefixes, the IdP entity id the admin chose, NameID emailAddress
    // (the SAMLSubject), attributes as the admin names them (email, firstname, lastname) and the
    // group attribute memberOf, one value per group. Response and assertion signed ("Sign
    // Assertion" on, besides the signed Response).
    name: 'JumpCloud',
    issuer: 'https://sso.jumpcloud.com/saml2/orgsync-acme',
    attributeMapping: { firstName: 'firstname', lastName: 'lastname' },
    build: (c) => {
      const t = times();
      const p = 'saml2:';
      const basic = 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic';
      return (
        `<saml2p:Response xmlns:saml2p="urn:oasis:names:tc:SAML:2.0:protocol" Destination="${c.acsUrl}" ID="_${randomHex(20)}" InResponseTo="${c.inResponseTo}" IssueInstant="${t.now}" Version="2.0">` +
        `<saml2:Issuer xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion">${c.issuer}</saml2:Issuer>` +
        `<saml2p:Status><saml2p:StatusCode Value="${SUCCESS}"/></saml2p:Status>` +
        `<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" ID="_${randomHex(20)}" IssueInstant="${t.now}" Version="2.0">` +
        `<saml2:Issuer>${c.issuer}</saml2:Issuer>` +
        subjectAndConditions(p, c, c.email, EMAIL, t) +
        authnStatement(p, t, PPT, ` SessionNotOnOrAfter="${t.session}"`) +
        `<saml2:AttributeStatement>` +
        attribute(p, 'email', [c.email], { nameFormat: basic, typed: true }) +
        attribute(p, 'firstname', [c.givenName], { nameFormat: basic, typed: true }) +
        attribute(p, 'lastname', [c.familyName], { nameFormat: basic, typed: true }) +
        attribute(p, 'memberOf', c.groups, { nameFormat: basic, typed: true }) +
        `</saml2:AttributeStatement></saml2:Assertion></saml2p:Response>`
      );
    },
    sign: (xml) => signResponse(signAssertion(xml, f.idp), f.idp),
  },
];

const randomHex = (bytes: number) => crypto.randomBytes(bytes).toString('hex');
/** Okta's ids: decimal digits after "id". */
const okId = () => [...crypto.randomBytes(20)].map((b) => b % 10).join('');

describe.each(vendors)('a response shaped like $name', (vendor) => {
  const slug = vendor.name.toLowerCase().replace(/[^a-z]+/g, '-');
  const email = `${slug}@partner.example`;
  let connectionId: string;
  beforeAll(async () => {
    const created = await request(f.app)
      .post('/api/saml/connections')
      .set(admin())
      .send({
        name: vendor.name,
        idpEntityId: vendor.issuer,
        ssoUrl: 'https://idp.example.test/sso',
        certificates: [f.idp.certificate],
        ...(vendor.attributeMapping ? { attributeMapping: vendor.attributeMapping } : {}),
      })
      .expect(201);
    connectionId = created.body.id;
    await request(f.app)
      .post('/api/invitations')
      .set(admin())
      .send({ emails: email, roles: ['member'] })
      .expect(201);
  });

  it('signs the invited person in, with their names and groups', async () => {
    const inResponseTo = await startLogin(f, '/app', f.browser, { connection: connectionId });
    const groups = [`${vendor.name} Engineering`, `${vendor.name} Admins`];
    const xml = vendor.sign(
      vendor.build({
        issuer: vendor.issuer,
        acsUrl: f.acsUrl,
        audience: f.audience,
        inResponseTo,
        email,
        givenName: 'Pat',
        familyName: vendor.name,
        groups,
      }),
    );
    const res = await postResponse(f, xml);
    expect(res.status, res.text.slice(0, 500)).toBe(303);
    expect(await lastAttempt(f)).toMatchObject({
      outcome: 'success',
      reason: 'invitation',
      email,
      nameId: vendor.nameId ?? email,
    });
    const [account] = await f.ctx.sql<{ givenName: string; familyName: string; id: string }[]>`
      select id, given_name, family_name from accounts where email = ${email}`;
    expect(account).toMatchObject({ givenName: 'Pat', familyName: vendor.name });
    const samlGroups = await f.ctx.sql<{ displayName: string }[]>`
      select g.display_name from groups g
      join group_members gm on gm.organization_id = g.organization_id and gm.group_id = g.id
      where g.organization_id = ${f.organization.id} and g.source = 'saml' and gm.account_id = ${account!.id}
      order by 1`;
    expect(samlGroups.map((g) => g.displayName)).toEqual([...groups].sort());
  });
});
