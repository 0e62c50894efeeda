import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseDigest } from './support/digest.ts';
import { oktaUser, PATCH_OP, scimFixture, SCIM_JSON } from './support/scim.ts';

/**
 * Inputs that answered 500 (issue 11): NUL bytes, deep nesting, over-long values, huge numbers,
 * dates PostgreSQL cannot hold, bodies over the limit. Each gets a 4xx in its protocol's error
 * shape and changes nothing.
 */
let f: Awaited<ReturnType<typeof scimFixture>>;
let userId: string;
let groupId: string;
beforeAll(async () => {
  f = await scimFixture('hostile-org');
  userId = (await f.client.post('/Users', oktaUser('target@x.test')).expect(201)).body.id;
  groupId = (await f.client.post('/Groups', { displayName: 'Target', members: [{ value: userId }] }).expect(201)).body
    .id;
});
afterAll(async () => f.ctx.database.close());

const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const NUL = '\u0000';
const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const admin = () => ({ authorization: `Bearer ${f.org.adminKey}` });

type Res = { status: number; body: Record<string, unknown>; text: string };

function expectScimError(res: Res, status: number, scimType?: string, label = '') {
  const about = `${label} ${res.text.slice(0, 300)}`;
  expect(res.status, about).toBe(status);
  expect(res.body.schemas, about).toEqual([ERROR]);
  expect(res.body.status).toBe(String(status));
  if (scimType) expect(res.body.scimType, about).toBe(scimType);
}

function expectAdminError(res: Res, status: number) {
  expect(res.status, res.text).toBe(status);
  expect(res.body).toMatchObject({ error: expect.any(String), message: expect.any(String) });
}

/** Runs the requests and checks that the database is as it was before them. */
async function unchanged(requests: () => Promise<void>) {
  const before = await databaseDigest(f.ctx.sql);
  await requests();
  expect(await databaseDigest(f.ctx.sql)).toBe(before);
}

/** `oktaUser` with one string replaced by `value`, at each place a User carries strings. */
const userWith: Record<string, (value: string) => Record<string, unknown>> = {
  userName: (v) => ({ ...oktaUser('nul@x.test'), userName: v }),
  externalId: (v) => ({ ...oktaUser('nul@x.test'), externalId: v }),
  displayName: (v) => ({ ...oktaUser('nul@x.test'), displayName: v }),
  'name.givenName': (v) => ({ ...oktaUser('nul@x.test'), name: { givenName: v, familyName: 'T' } }),
  'name.familyName': (v) => ({ ...oktaUser('nul@x.test'), name: { givenName: 'N', familyName: v } }),
  'emails.value': (v) => ({ ...oktaUser('nul@x.test'), emails: [{ value: v, type: 'work', primary: true }] }),
  'emails.type': (v) => ({ ...oktaUser('nul@x.test'), emails: [{ value: 'nul@x.test', type: v, primary: true }] }),
  locale: (v) => ({ ...oktaUser('nul@x.test'), locale: v }),
  title: (v) => ({ ...oktaUser('nul@x.test'), title: v }),
  'phoneNumbers.value': (v) => ({ ...oktaUser('nul@x.test'), phoneNumbers: [{ value: v, type: 'work' }] }),
  department: (v) => ({ ...oktaUser('nul@x.test'), [ENTERPRISE]: { department: v } }),
  manager: (v) => ({ ...oktaUser('nul@x.test'), [ENTERPRISE]: { manager: v } }),
  'an attribute name': (v) => ({ ...oktaUser('nul@x.test'), [`x${v}`]: 'value' }),
};

describe('NUL bytes', () => {
  it('in any string of a SCIM User: 400 invalidValue on POST, PUT and PATCH', async () => {
    await unchanged(async () => {
      for (const [field, build] of Object.entries(userWith)) {
        const body = build(`a${NUL}b@x.test`);
        expectScimError(await f.client.post('/Users', body), 400, 'invalidValue', field);
        expectScimError(await f.client.put(`/Users/${userId}`, body), 400, 'invalidValue', field);
        const patch = await f.client.patch(`/Users/${userId}`, [{ op: 'replace', value: body }]);
        expectScimError(patch, 400, 'invalidValue', field);
      }
      const pathed = await f.client.patch(`/Users/${userId}`, [{ op: 'replace', path: 'title', value: `T${NUL}` }]);
      expectScimError(pathed, 400, 'invalidValue');
      const inPath = await f.client.patch(`/Users/${userId}`, [{ op: 'replace', path: `title${NUL}`, value: 'T' }]);
      expectScimError(inPath, 400);
    });
  });

  it('in a SCIM Group: 400 invalidValue on POST, PUT and PATCH', async () => {
    await unchanged(async () => {
      for (const body of [
        { displayName: `G${NUL}` },
        { displayName: 'G', externalId: `e${NUL}` },
        { displayName: 'G', members: [{ value: `${userId}${NUL}` }] },
      ]) {
        expectScimError(await f.client.post('/Groups', body), 400, 'invalidValue');
        expectScimError(await f.client.put(`/Groups/${groupId}`, body), 400, 'invalidValue');
        expectScimError(
          await f.client.patch(`/Groups/${groupId}`, [{ op: 'replace', value: body }]),
          400,
          'invalidValue',
        );
      }
    });
  });

  it('in a SCIM filter or query parameter: 400', async () => {
    for (const filter of [`userName eq "a${NUL}"`, 'userName eq "a\\u0000"', 'emails.value co "\\u0000"']) {
      expectScimError(await f.client.get(`/Users?filter=${encodeURIComponent(filter)}`), 400, 'invalidFilter');
      expectScimError(await f.client.get(`/Groups?filter=${encodeURIComponent(filter)}`), 400, 'invalidFilter');
      const search = await f.client.post('/Users/.search', { filter });
      expectScimError(search, 400, search.body.scimType === 'invalidFilter' ? 'invalidFilter' : 'invalidValue');
    }
    expectScimError(await f.client.get('/Users?sortBy=userName%00'), 400);
    expectScimError(await f.client.get('/Users?attributes=userName%00'), 400);
    // A path express cannot percent-decode.
    expectScimError(await f.client.get('/Users/%zz'), 400, 'invalidValue');
  });

  it('in admin API fields, queries and paths: 400, and nothing changes', async () => {
    await unchanged(async () => {
      const sends: [string, string, unknown][] = [
        ['post', '/api/groups', { displayName: `G${NUL}` }],
        ['patch', `/api/organization`, { name: `Acme${NUL}` }],
        ['post', '/api/invitations', { emails: [`a${NUL}@x.test`] }],
        ['post', '/api/invitations', { emails: 'new@x.test', givenName: `N${NUL}` }],
        ['post', '/api/roles', { key: 'custom', name: `C${NUL}`, permissions: [] }],
        ['put', `/api/members/${userId}/roles`, { roles: [`member${NUL}`] }],
        ['post', '/api/scim-tokens', { name: `t${NUL}` }],
        ['post', '/api/webhooks', { url: `https://hooks.example.com/${NUL}` }],
        ['post', '/api/domains', { domain: `x${NUL}.example.com` }],
        ['post', '/api/group-mappings', { groupName: `G${NUL}`, roles: ['member'] }],
        ['post', '/api/saml/connections', { name: `S${NUL}`, metadataXml: `<x${NUL}/>` }],
        ['post', `/api/groups/${groupId}/members`, { add: [`${userId}${NUL}`] }],
      ];
      for (const [method, path, body] of sends) {
        const res = await (request(f.app) as unknown as Record<string, (p: string) => request.Test>)[method]!(path)
          .set(admin())
          .send(body as object);
        expectAdminError(res, 400);
      }
      for (const path of [
        '/api/members?email=a%00',
        '/api/audit?actor=%00',
        '/api/group-mappings/preview?groupName=%00',
        '/api/groups/%00/members',
        '/api/invitations?status=%00',
      ]) {
        expectAdminError(await request(f.app).get(path).set(admin()), 400);
      }
    });
  });
});

/** `{"a":{"a":…1…}}` nested `depth` deep. */
const deepObject = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
const deepArray = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

describe('JSON nested 10,000 deep', () => {
  it('SCIM: 400 invalidSyntax on every route that takes a body', async () => {
    await unchanged(async () => {
      for (const deep of [deepObject(10_000), deepArray(10_000)]) {
        const user = `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"deep@x.test","x":${deep}}`;
        const patch = `{"schemas":["${PATCH_OP}"],"Operations":[{"op":"replace","path":"title","value":${deep}}]}`;
        for (const [method, path, body] of [
          ['post', '/Users', user],
          ['put', `/Users/${userId}`, user],
          ['patch', `/Users/${userId}`, patch],
          ['post', '/Groups', `{"displayName":"Deep","x":${deep}}`],
          ['patch', `/Groups/${groupId}`, patch],
          ['post', '/Users/.search', `{"filter":${deep}}`],
        ] as const) {
          expectScimError(await f.client.raw(method, path, body), 400, 'invalidSyntax');
        }
      }
    });
  });

  it('admin API: 400 invalid', async () => {
    await unchanged(async () => {
      for (const deep of [deepObject(10_000), deepArray(10_000)]) {
        const res = await request(f.app)
          .post('/api/groups')
          .set(admin())
          .set('content-type', 'application/json')
          .send(`{"displayName":"Deep","x":${deep}}`);
        expectAdminError(res, 400);
      }
    });
  });

  it('a document nested as deep as real ones is fine', async () => {
    const res = await f.client.post('/Users', {
      ...oktaUser('nested@x.test'),
      [ENTERPRISE]: { manager: { value: userId, displayName: 'Boss' } },
    });
    expect(res.status, res.text).toBe(201);
  });
});

describe('values too long for their columns and indexes', () => {
  const long = (n: number) => 'x'.repeat(n);

  it('a userName over 512 characters: 400 invalidValue on POST, PUT and PATCH', async () => {
    await unchanged(async () => {
      const userName = `${long(513)}@x.test`;
      expectScimError(await f.client.post('/Users', { ...oktaUser('long@x.test'), userName }), 400, 'invalidValue');
      expectScimError(
        await f.client.put(`/Users/${userId}`, { ...oktaUser('target@x.test'), userName }),
        400,
        'invalidValue',
      );
      expectScimError(
        await f.client.patch(`/Users/${userId}`, [{ op: 'replace', path: 'userName', value: userName }]),
        400,
        'invalidValue',
      );
    });
    const fits = await f.client.post('/Users', { ...oktaUser('fits@x.test'), userName: long(512) });
    expect(fits.status, fits.text).toBe(201);
  });

  it('a 1 MB externalId or email: 400 invalidValue (users and groups)', async () => {
    const mb = long(1_000_000);
    await unchanged(async () => {
      for (const body of [
        { ...oktaUser('mb@x.test'), externalId: mb },
        { ...oktaUser('mb@x.test'), emails: [{ value: 'mb@x.test', primary: true }, { value: `${mb}@x.test` }] },
        { ...oktaUser('mb@x.test'), emails: [{ value: `${mb}@x.test`, primary: true }] },
      ]) {
        expectScimError(await f.client.post('/Users', body), 400, 'invalidValue');
        expectScimError(await f.client.put(`/Users/${userId}`, body), 400, 'invalidValue');
        expectScimError(
          await f.client.patch(`/Users/${userId}`, [{ op: 'replace', value: body }]),
          400,
          'invalidValue',
        );
      }
      expectScimError(await f.client.post('/Groups', { displayName: 'MB', externalId: mb }), 400, 'invalidValue');
      expectScimError(
        await f.client.put(`/Groups/${groupId}`, { displayName: 'Target', externalId: mb }),
        400,
        'invalidValue',
      );
      expectScimError(
        await f.client.patch(`/Groups/${groupId}`, [{ op: 'replace', path: 'externalId', value: mb }]),
        400,
        'invalidValue',
      );
      expectScimError(await f.client.post('/Groups', { displayName: long(257) }), 400, 'invalidValue');
      // The invitation API answers per address: none invited is a 400.
      const invite = await request(f.app)
        .post('/api/invitations')
        .set(admin())
        .send({ emails: `${mb}@x.test` });
      expect(invite.status).toBe(400);
      expect(invite.body).toMatchObject({ invited: 0, failed: 1 });
    });
  });
});

describe('numbers out of range', () => {
  it('a startIndex of 2^63 or more answers an empty page (RFC 7644: past the end)', async () => {
    for (const startIndex of ['9223372036854775807', '9223372036854775808', '99999999999999999999999', '1e400']) {
      for (const path of ['/Users', '/Groups']) {
        const res = await f.client.get(`${path}?startIndex=${startIndex}`);
        expect(res.status, `${path} ${startIndex}: ${res.text}`).toBe(200);
        expect(res.body.Resources).toEqual([]);
        expect(res.body.totalResults).toBeGreaterThan(0);
      }
    }
    const search = await f.client.raw('post', '/Users/.search', '{"startIndex": 9223372036854775808, "count": 1e400}');
    expect(search.status, search.text).toBe(200);
    expect(search.body.Resources).toEqual([]);
  });

  it('numeric ids and cursors beyond bigint: 400 on the admin API', async () => {
    for (const value of ['9223372036854775808', '99999999999999999999', '1'.repeat(100)]) {
      for (const path of [
        `/api/deliveries?after=${value}`,
        `/api/events?after=${value}`,
        `/api/audit?before=${value}`,
        `/api/saml/attempts?before=${value}`,
      ]) {
        expectAdminError(await request(f.app).get(path).set(admin()), 400);
      }
      expectAdminError(
        await request(f.app)
          .post('/api/deliveries/retry')
          .set(admin())
          .send({ ids: [value] }),
        400,
      );
      expectAdminError(
        await request(f.app)
          .post('/api/events/retry')
          .set(admin())
          .send({ ids: [value] }),
        400,
      );
    }
    const tokens = await request(f.app).get('/api/scim-tokens').set(admin()).expect(200);
    const tokenId = tokens.body.tokens[0].id;
    expectAdminError(
      await request(f.app)
        .get(`/api/scim-tokens/${tokenId}/requests?before=${'9'.repeat(30)}`)
        .set(admin()),
      400,
    );
    // The largest bigint is a cursor like any other.
    await request(f.app).get('/api/audit?before=9223372036854775807').set(admin()).expect(200);
  });

  it('numeric or over-long ids in paths: 404', async () => {
    const id = '9'.repeat(30);
    for (const [method, path] of [
      ['delete', `/api/webhooks/${id}`],
      ['delete', `/api/group-mappings/${id}`],
      ['post', `/api/invitations/${id}/resend`],
      ['delete', `/api/invitations/${id}`],
      ['get', `/api/saml/connections/${id}`],
      ['delete', `/api/saml/connections/${id}`],
      ['get', `/api/groups/${id}/members`],
      ['get', `/api/scim-tokens/${id}/requests`],
      ['delete', `/api/scim-tokens/${id}`],
      ['delete', `/api/members/${id}`],
    ] as const) {
      const res = await (request(f.app) as unknown as Record<string, (p: string) => request.Test>)[method]!(path)
        .set(admin())
        .send({});
      expectAdminError(res, 404);
    }
  });
});

describe('dates PostgreSQL cannot hold', () => {
  it('a SCIM filter date outside years 1–9999: 400 invalidFilter', async () => {
    for (const date of [
      '+099999-01-01T00:00:00Z',
      '99999-01-01T00:00:00Z',
      '0000-01-01T00:00:00Z',
      '-000001-01-01T00:00:00Z',
      '+275760-09-13T00:00:00Z',
    ]) {
      for (const op of ['gt', 'eq', 'le']) {
        const filter = encodeURIComponent(`meta.lastModified ${op} "${date}"`);
        expectScimError(await f.client.get(`/Users?filter=${filter}`), 400, 'invalidFilter');
        expectScimError(await f.client.get(`/Groups?filter=${filter}`), 400, 'invalidFilter');
      }
    }
    for (const op of ['gt', 'eq', 'le', 'ne']) {
      for (const date of ['9999-12-31T23:59:59.999Z', '0001-01-01T00:00:00Z']) {
        const filter = encodeURIComponent(`meta.created ${op} "${date}"`);
        const res = await f.client.get(`/Users?filter=${filter}`);
        expect(res.status, `${op} ${date}: ${res.text}`).toBe(200);
      }
    }
  });

  it('an audit log date outside years 1–9999: 400', async () => {
    for (const date of ['+099999-01-01T00:00:00Z', '0000-01-01T00:00:00Z', '-000001-01-01T00:00:00Z']) {
      expectAdminError(
        await request(f.app)
          .get(`/api/audit?since=${encodeURIComponent(date)}`)
          .set(admin()),
        400,
      );
      expectAdminError(
        await request(f.app)
          .get(`/api/audit?until=${encodeURIComponent(date)}`)
          .set(admin()),
        400,
      );
    }
  });
});

describe('bodies over the limit and authentication first', () => {
  const huge = JSON.stringify({ userName: 'big@x.test', title: 'x'.repeat(2 * 1024 * 1024) });

  it('a SCIM body over BODY_LIMIT: 413 as a SCIM error; without a token, 401', async () => {
    const res = await f.client.raw('post', '/Users', huge);
    expectScimError(res, 413);
    expect(res.headers['content-type']).toContain('application/scim+json');
    const anonymous = await request(f.app).post('/scim/v2/Users').set('content-type', SCIM_JSON).send(huge);
    expectScimError(anonymous, 401);
  });

  it('the admin API authenticates before reading the body', async () => {
    const five = JSON.stringify({ displayName: 'x'.repeat(5 * 1024 * 1024) });
    for (const body of [five, '{"displayName": ']) {
      const res = await request(f.app).post('/api/groups').set('content-type', 'application/json').send(body);
      expectAdminError(res, 401);
      const wrongKey = await request(f.app)
        .post('/api/groups')
        .set('authorization', 'Bearer oskey_wrong')
        .set('content-type', 'application/json')
        .send(body);
      expectAdminError(wrongKey, 401);
    }
    const tooLarge = await request(f.app)
      .post('/api/groups')
      .set(admin())
      .set('content-type', 'application/json')
      .send(five);
    expectAdminError(tooLarge, 413);
    const malformed = await request(f.app)
      .post('/api/groups')
      .set(admin())
      .set('content-type', 'application/json')
      .send('{"displayName": ');
    expectAdminError(malformed, 400);
  });
});
