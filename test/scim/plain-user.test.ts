import SCIMMY from 'scimmy';
import { describe, expect, it } from 'vitest';
import { normalizeUser, type JsonObject } from '../../src/scim/normalize.ts';
import { plainUser } from '../../src/scim/plain-user.ts';
import { ENTERPRISE, entraUser } from './fixtures/vendor-requests.ts';

SCIMMY.Resources.declare(SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false));

const CORE = 'urn:ietf:params:scim:schemas:core:2.0:User';

/** scimmy's inbound pass, as users.ts ran it for every document before plain-user.ts. */
function scimmyUser(document: JsonObject): string {
  try {
    const { meta: _meta, ...plain } = JSON.parse(JSON.stringify(new SCIMMY.Schemas.User(document, 'in'))) as JsonObject;
    return JSON.stringify(plain);
  } catch (error) {
    return `refused: ${(error as Error).message}`;
  }
}

const okta = {
  schemas: [CORE],
  userName: 'isabella@okta.test',
  name: { givenName: 'Isabella', familyName: 'Moreno' },
  emails: [{ primary: true, value: 'isabella@okta.test', type: 'work' }],
  displayName: 'Isabella Moreno',
  locale: 'en-US',
  externalId: '00u1esetbnYBT9XqK0h7',
  groups: [],
  password: 'secret',
  active: true,
};
const peerBench = {
  schemas: [CORE],
  userName: 'ada.lovelace.run.1@example.com',
  externalId: 'f3a1c5e8-2d4b-4e6f-8a9b-0c1d2e3f4a5b',
  name: { givenName: 'Ada', familyName: 'Lovelace', formatted: 'Ada Lovelace' },
  displayName: 'Ada Lovelace',
  emails: [{ value: 'ada.lovelace.run.1@example.com', type: 'work', primary: true }],
  title: 'Engineering specialist',
  active: true,
};

/** Documents one change away from the common shapes: each must get scimmy's answer exactly. */
function variants(): JsonObject[] {
  const bases: Record<string, unknown>[] = [
    okta,
    peerBench,
    entraUser,
    { schemas: [CORE], userName: 'bare@example.test' },
  ];
  const changes: Array<(d: Record<string, unknown>) => Record<string, unknown>> = [
    (d) => d,
    (d) => ({ ...d, schemas: undefined }),
    (d) => ({ ...d, schemas: [] }),
    (d) => ({ ...d, schemas: 'x' }),
    (d) => ({ ...d, schemas: [ENTERPRISE, CORE] }),
    (d) => ({ ...d, schemas: [CORE, ENTERPRISE] }),
    (d) => ({ ...d, schemas: [CORE, 'urn:example:unknown'] }),
    (d) => ({ ...d, [ENTERPRISE]: { department: 'Navy' } }),
    (d) => ({ ...d, schemas: [CORE, ENTERPRISE], [ENTERPRISE]: {} }),
    (d) => ({ ...d, schemas: [CORE, ENTERPRISE], [ENTERPRISE]: { department: 'Navy', bogus: 1 } }),
    (d) => ({ ...d, schemas: [CORE, ENTERPRISE], [ENTERPRISE]: { manager: { value: 'm' } } }),
    (d) => ({ ...d, schemas: [CORE, ENTERPRISE], [ENTERPRISE]: { manager: { value: 'm', $ref: 'x' } } }),
    (d) => ({ ...d, schemas: [CORE, ENTERPRISE], [ENTERPRISE]: { costCenter: 5 } }),
    (d) => ({ ...d, id: 'a-given-id' }),
    (d) => ({ ...d, meta: { resourceType: 'User' } }),
    (d) => ({ ...d, unknownAttribute: 1 }),
    (d) => ({ ...d, USERNAME: 'other@example.test' }),
    (d) => ({ ...d, userName: undefined }),
    (d) => ({ ...d, userName: '' }),
    (d) => ({ ...d, userName: 7 }),
    (d) => ({ ...d, active: 'true' }),
    (d) => ({ ...d, active: null }),
    (d) => ({ ...d, active: false }),
    (d) => ({ ...d, displayName: 5 }),
    (d) => ({ ...d, displayName: null }),
    (d) => ({ ...d, displayName: '' }),
    (d) => ({ ...d, name: {} }),
    (d) => ({ ...d, name: 'Ada' }),
    (d) => ({ ...d, name: { familyName: null, givenName: 'A' } }),
    (d) => ({ ...d, name: { GivenName: 'A' } }),
    (d) => ({
      ...d,
      name: { honorificSuffix: 'III', middleName: 'M', formatted: 'f', givenName: 'g', familyName: 'f' },
    }),
    (d) => ({ ...d, emails: [] }),
    (d) => ({ ...d, emails: [{}] }),
    (d) => ({ ...d, emails: [null] }),
    (d) => ({ ...d, emails: { value: 'a@b.c' } }),
    (d) => ({ ...d, emails: [{ value: 'a@b.c', type: 'custom' }] }),
    (d) => ({ ...d, emails: [{ Value: 'a@b.c', TYPE: 'work' }] }),
    (d) => ({ ...d, emails: [{ primary: 'true', value: 'a@b.c' }] }),
    (d) => ({
      ...d,
      emails: [
        { value: 'a@b.c', display: 'A', type: 'home', primary: false },
        { value: 'c@d.e', primary: true },
      ],
    }),
    (d) => ({
      ...d,
      phoneNumbers: [
        { value: '+1 555', type: 'mobile' },
        { value: '2', type: 'weird' },
      ],
    }),
    (d) => ({ ...d, addresses: [{ streetAddress: 's', locality: 'l', country: 'US', formatted: 'f', type: 'work' }] }),
    (d) => ({ ...d, roles: [{ value: 'admin', primary: true }] }),
    (d) => ({ ...d, roles: [{ value: 'admin', type: 'x' }] }),
    (d) => ({ ...d, entitlements: [{ value: 'e', type: 'anything' }] }),
    (d) => ({ ...d, ims: [{ value: 'x', type: 'skype' }] }),
    (d) => ({ ...d, photos: [{ value: 'https://example.test/p.png', type: 'photo' }] }),
    (d) => ({ ...d, x509Certificates: [{ value: 'MIIB' }] }),
    (d) => ({ ...d, profileUrl: 'not a url' }),
    (d) => ({ ...d, profileUrl: 'https://example.test/u' }),
    (d) => ({ ...d, groups: [{ value: 'g' }] }),
    (d) => ({ ...d, password: 'secret' }),
    (d) => ({ ...d, nickName: 'n', userType: 'Employee', preferredLanguage: 'en', timezone: 'Europe/Paris' }),
    (d) => ({ ...d, externalId: null }),
    (d) => ({ ...d, externalId: 12 }),
  ];
  const documents: JsonObject[] = [];
  for (const base of bases) {
    for (const change of changes) {
      const document = change(structuredClone(base));
      documents.push(JSON.parse(JSON.stringify(document)) as JsonObject);
    }
  }
  return documents;
}

describe('the plain User check', () => {
  it('answers what scimmy answers, attribute order included, or leaves the document to scimmy', () => {
    let taken = 0;
    for (const document of variants()) {
      const plain = plainUser(document);
      if (plain === undefined) continue;
      taken++;
      expect(JSON.stringify(plain), JSON.stringify(document)).toBe(scimmyUser(document));
    }
    expect(taken).toBeGreaterThan(40);
  });

  it('takes the documents Okta, Entra ID and the peer benchmark create users with', () => {
    for (const document of [peerBench, entraUser, { ...okta, groups: undefined, password: undefined }]) {
      const normalized = normalizeUser(JSON.parse(JSON.stringify(document)) as JsonObject);
      const plain = plainUser(normalized);
      expect(plain).toBeDefined();
      expect(JSON.stringify(plain)).toBe(scimmyUser(normalized));
    }
  });

  it('leaves every document scimmy refuses to scimmy, so its error is the one answered', () => {
    for (const document of variants()) {
      if (scimmyUser(document).startsWith('refused')) expect(plainUser(document)).toBeUndefined();
    }
  });
});
