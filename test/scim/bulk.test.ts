import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemActor } from '../../src/core/actor.ts';
import { inviteMembers } from '../../src/core/invitations.ts';
import { getMembership } from '../../src/core/memberships.ts';
import { createTestOrganization } from '../support/context.ts';
import { oktaUser, PATCH_OP, scimClient, scimFixture } from '../support/scim.ts';
import { deadlocksSoFar } from '../support/table-counts.ts';

const BULK_REQUEST = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';

type Client = ReturnType<typeof scimClient>;
interface BulkOutcome {
  method: string;
  bulkId?: string;
  location?: string;
  version?: string;
  status: string;
  response?: { schemas: string[]; status: string; scimType?: string; detail: string };
}

const bulk = (operations: unknown[], extra: Record<string, unknown> = {}) => ({
  schemas: [BULK_REQUEST],
  ...extra,
  Operations: operations,
});
const createUser = (bulkId: string, email: string, extra: Record<string, unknown> = {}) => ({
  method: 'POST',
  path: '/Users',
  bulkId,
  data: oktaUser(email, extra),
});
const idOf = (outcome: BulkOutcome) => outcome.location!.split('/').pop()!;

async function send(client: Client, body: unknown, status = 200): Promise<BulkOutcome[]> {
  const res = await client.post('/Bulk', body).expect(status);
  expect(res.type).toBe('application/scim+json');
  return (res.body as { Operations: BulkOutcome[] }).Operations;
}

let f: Awaited<ReturnType<typeof scimFixture>>;
beforeAll(async () => {
  f = await scimFixture('bulk-org');
});
afterAll(async () => f.ctx.database.close());

describe('SCIM /Bulk', () => {
  it('ServiceProviderConfig advertises bulk with its limits', async () => {
    const config = await f.client.get('/ServiceProviderConfig').expect(200);
    expect(config.body.bulk).toEqual({ supported: true, maxOperations: 1000, maxPayloadSize: 4 * 2 ** 20 });
  });

  it('creates a group whose members are created in the same request, whatever the order', async () => {
    // The group comes first and names users defined after it; a PATCH names the group by bulkId.
    const operations = [
      {
        method: 'POST',
        path: '/Groups',
        bulkId: 'team',
        data: {
          schemas: [GROUP],
          displayName: 'Bulk team',
          members: [{ value: 'bulkId:ann' }, { value: 'bulkId:bob' }],
        },
      },
      createUser('ann', 'ann@bulk.test'),
      createUser('bob', 'bob@bulk.test'),
      createUser('cid', 'cid@bulk.test'),
      {
        method: 'PATCH',
        path: '/Groups/bulkId:team',
        data: { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value: 'bulkId:cid' }] }] },
      },
    ];
    const outcomes = await send(f.client, bulk(operations));
    expect(outcomes.map((o) => [o.method, o.bulkId, o.status])).toEqual([
      ['POST', 'team', '201'],
      ['POST', 'ann', '201'],
      ['POST', 'bob', '201'],
      ['POST', 'cid', '201'],
      ['PATCH', undefined, '204'],
    ]);
    const [team, ann, bob, cid, patched] = outcomes as [
      BulkOutcome,
      BulkOutcome,
      BulkOutcome,
      BulkOutcome,
      BulkOutcome,
    ];
    expect(team.location).toMatch(/^https:\/\/orgsync\.test\/scim\/v2\/Groups\/[0-9a-f-]{36}$/);
    expect(ann.location).toMatch(/^https:\/\/orgsync\.test\/scim\/v2\/Users\/[0-9a-f-]{36}$/);
    expect(ann.version).toMatch(/^W\/"\d+"$/);
    expect(patched.location).toBe(team.location);
    expect(outcomes.every((o) => o.response === undefined)).toBe(true);

    const group = await f.client.get(`/Groups/${idOf(team)}`).expect(200);
    expect(group.body.displayName).toBe('Bulk team');
    expect(group.body.members.map((m: { value: string }) => m.value).sort()).toEqual(
      [idOf(ann), idOf(bob), idOf(cid)].sort(),
    );
    const user = await f.client.get(`/Users/${idOf(ann)}`).expect(200);
    expect(user.body.userName).toBe('ann@bulk.test');
  });

  it('PUT, PATCH and DELETE of users and groups, and a user replaced by bulkId', async () => {
    const outcomes = await send(
      f.client,
      bulk([
        createUser('dee', 'dee@bulk.test'),
        { method: 'PUT', path: '/Users/bulkId:dee', data: oktaUser('dee@bulk.test', { displayName: 'Dee Replaced' }) },
        { method: 'POST', path: '/Groups', bulkId: 'g', data: { schemas: [GROUP], displayName: 'To rename' } },
        { method: 'PUT', path: '/Groups/bulkId:g', data: { schemas: [GROUP], displayName: 'Renamed' } },
        {
          method: 'patch',
          path: '/Users/bulkId:dee',
          data: { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { active: false } }] },
        },
        { method: 'DELETE', path: '/Groups/bulkId:g' },
      ]),
    );
    expect(outcomes.map((o) => `${o.method} ${o.status}`)).toEqual([
      'POST 201',
      'PUT 200',
      'POST 201',
      'PUT 200',
      'PATCH 200',
      'DELETE 204',
    ]);
    const dee = await f.client.get(`/Users/${idOf(outcomes[0]!)}`).expect(200);
    expect(dee.body).toMatchObject({ displayName: 'Dee Replaced', active: false });
    expect(outcomes[4]!.version).toBe(dee.body.meta.version);
    await f.client.get(`/Groups/${idOf(outcomes[2]!)}`).expect(404);
    const deleted = await send(f.client, bulk([{ method: 'DELETE', path: `/Users/${idOf(outcomes[0]!)}` }]));
    expect(deleted).toEqual([{ method: 'DELETE', location: outcomes[0]!.location, status: '204' }]);
    await f.client.get(`/Users/${idOf(outcomes[0]!)}`).expect(404);
  });

  it('takes paths in any case and with a trailing slash, as single requests do, and answers canonical locations', async () => {
    const outcomes = await send(
      f.client,
      bulk([
        { method: 'POST', path: '/users', bulkId: 'low', data: oktaUser('low@bulk.test') },
        { method: 'POST', path: '/GROUPS/', bulkId: 'crew', data: { schemas: [GROUP], displayName: 'Any case' } },
        { method: 'PUT', path: '/uSeRs/bulkId:low', data: oktaUser('low@bulk.test', { displayName: 'Low Put' }) },
        {
          method: 'PATCH',
          path: '/groups/bulkId:crew/',
          data: { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value: 'bulkId:low' }] }] },
        },
      ]),
    );
    expect(outcomes.map((o) => `${o.method} ${o.status}`)).toEqual(['POST 201', 'POST 201', 'PUT 200', 'PATCH 204']);
    const [user, group, put, patch] = outcomes as [BulkOutcome, BulkOutcome, BulkOutcome, BulkOutcome];
    expect(user.location).toMatch(/^https:\/\/orgsync\.test\/scim\/v2\/Users\/[0-9a-f-]{36}$/);
    expect(group.location).toMatch(/^https:\/\/orgsync\.test\/scim\/v2\/Groups\/[0-9a-f-]{36}$/);
    expect([put.location, patch.location]).toEqual([user.location, group.location]);
    expect((await f.client.get(`/Users/${idOf(user)}`).expect(200)).body.displayName).toBe('Low Put');
    const members = (await f.client.get(`/Groups/${idOf(group)}`).expect(200)).body.members;
    expect(members.map((m: { value: string }) => m.value)).toEqual([idOf(user)]);

    const deleted = await send(
      f.client,
      bulk([
        { method: 'DELETE', path: `/GROUPS/${idOf(group)}` },
        { method: 'DELETE', path: `/users/${idOf(user)}` },
      ]),
    );
    expect(deleted).toEqual([
      { method: 'DELETE', location: group.location, status: '204' },
      { method: 'DELETE', location: user.location, status: '204' },
    ]);
    await f.client.get(`/Users/${idOf(user)}`).expect(404);
  });

  it('answers each failed operation with its SCIM error and carries on', async () => {
    const outcomes = await send(
      f.client,
      bulk([
        createUser('e1', 'eve@bulk.test'),
        createUser('e2', 'eve@bulk.test'),
        { method: 'POST', path: '/Users', bulkId: 'nameless', data: { schemas: oktaUser('x@bulk.test').schemas } },
        { method: 'DELETE', path: '/Users/00000000-0000-4000-8000-000000000000' },
        {
          method: 'PATCH',
          path: '/Groups/00000000-0000-4000-8000-000000000000',
          data: { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'nonsense', value: 1 }] },
        },
        createUser('fay', 'fay@bulk.test'),
      ]),
    );
    expect(outcomes.map((o) => [o.status, o.response?.scimType])).toEqual([
      ['201', undefined],
      ['409', 'uniqueness'],
      ['400', 'invalidValue'],
      ['404', undefined],
      ['400', 'invalidPath'],
      ['201', undefined],
    ]);
    expect(outcomes[1]).toMatchObject({ method: 'POST', bulkId: 'e2', response: { schemas: [ERROR], status: '409' } });
    expect(outcomes[1]!.location).toBeUndefined();
    expect(outcomes[3]!.location).toBe('https://orgsync.test/scim/v2/Users/00000000-0000-4000-8000-000000000000');
  });

  it('refuses circular, unknown and failed bulkId references with 409 invalidValue', async () => {
    const outcomes = await send(
      f.client,
      bulk([
        {
          method: 'POST',
          path: '/Groups',
          bulkId: 'a',
          data: { schemas: [GROUP], displayName: 'Circle A', members: [{ value: 'bulkId:b' }] },
        },
        {
          method: 'POST',
          path: '/Groups',
          bulkId: 'b',
          data: { schemas: [GROUP], displayName: 'Circle B', members: [{ value: 'bulkId:a' }] },
        },
        { method: 'DELETE', path: '/Users/bulkId:nowhere' },
        createUser('dup', 'ann@bulk.test'),
        {
          method: 'POST',
          path: '/Groups',
          bulkId: 'c',
          data: { schemas: [GROUP], displayName: 'Needs dup', members: [{ value: 'bulkId:dup' }] },
        },
      ]),
    );
    expect(outcomes.map((o) => [o.bulkId, o.status, o.response?.scimType])).toEqual([
      ['a', '409', 'invalidValue'],
      ['b', '409', 'invalidValue'],
      [undefined, '409', 'invalidValue'],
      ['dup', '409', 'uniqueness'],
      ['c', '409', 'invalidValue'],
    ]);
    expect(outcomes.map((o) => o.response?.detail)).toEqual([
      'bulkId:b names an operation that failed',
      'bulkId:a is a circular reference',
      'bulkId:nowhere is not defined by a POST of this request',
      expect.stringContaining('already exists'),
      'bulkId:dup names an operation that failed',
    ]);
    const groups = await f.client.get('/Groups?filter=displayName sw "Circle"').expect(200);
    expect(groups.body.totalResults).toBe(0);
  });

  it('stops after failOnErrors errors and runs none of the remaining operations', async () => {
    // Independent creates run several at once: the result is still that of running them in order.
    const operations = [
      createUser('g1', 'g1@bulk.test'),
      createUser('g2', 'g2@bulk.test'),
      createUser('g3', 'g1@bulk.test'),
      createUser('g4', 'g4@bulk.test'),
      createUser('g5', 'g5@bulk.test'),
      createUser('g6', 'g2@bulk.test'),
      createUser('g7', 'g7@bulk.test'),
      createUser('g8', 'g8@bulk.test'),
    ];
    const outcomes = await send(f.client, bulk(operations, { failOnErrors: 2 }));
    expect(outcomes.map((o) => [o.bulkId, o.status])).toEqual([
      ['g1', '201'],
      ['g2', '201'],
      ['g3', '409'],
      ['g4', '201'],
      ['g5', '201'],
      ['g6', '409'],
    ]);
    const left = await f.client.get('/Users?filter=userName eq "g7@bulk.test"').expect(200);
    expect(left.body.totalResults).toBe(0);
    const once = await send(
      f.client,
      bulk([createUser('x', 'g1@bulk.test'), createUser('y', 'g7@bulk.test')], { failOnErrors: 1 }),
    );
    expect(once.map((o) => o.status)).toEqual(['409']);
  });

  it('creates sharing a transaction: one needing the longer path (an invitation, inactive) leaves the others intact', async () => {
    const [invited] = await inviteMembers(
      f.ctx.sql,
      f.ctx.config.serverSecret,
      f.org.organization.id,
      [{ email: 'invited@bulk.test', roles: ['billing'] }],
      systemActor('admin'),
    );
    expect(invited!.invited).toBe(true);
    await f.client.post('/Users', oktaUser('taken@bulk.test')).expect(201);
    const outcomes = await send(
      f.client,
      bulk([
        createUser('h1', 'h1@bulk.test'),
        createUser('h2', 'h2@bulk.test'),
        createUser('h3', 'taken@bulk.test'),
        createUser('h4', 'invited@bulk.test'),
        createUser('h5', 'h5@bulk.test', { active: false }),
        createUser('h6', 'h6@bulk.test'),
      ]),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['201', '201', '409', '201', '201', '201']);
    const membership = async (outcome: BulkOutcome) => getMembership(f.ctx.sql, f.org.organization.id, idOf(outcome));
    expect(await membership(outcomes[3]!)).toMatchObject({ status: 'active', roles: ['billing'] });
    expect(await membership(outcomes[4]!)).toMatchObject({ status: 'suspended' });
    for (const i of [0, 1, 5]) expect(await membership(outcomes[i]!)).toMatchObject({ status: 'active' });
    const audit = await f.ctx.sql`
      select count(*)::int as n from audit_log where action = 'scim.user_created' and details ->> 'userName' like 'h_@bulk.test'`;
    expect(audit).toEqual([{ n: 4 }]);
  });

  it('refuses a malformed request as a whole, changing nothing', async () => {
    const before = await f.ctx.sql`select count(*)::int as n from scim_users`;
    const refusals = [
      { Operations: [createUser('a', 'm1@bulk.test')] },
      bulk([createUser('a', 'm1@bulk.test'), createUser('a', 'm2@bulk.test')]),
      bulk([{ method: 'POST', path: '/Users', data: oktaUser('m3@bulk.test') }]),
      bulk([createUser('a', 'm1@bulk.test'), { method: 'GET', path: '/Users' }]),
      bulk([createUser('a', 'm1@bulk.test'), { method: 'DELETE', path: '/Users' }]),
      bulk([createUser('a', 'm1@bulk.test'), { method: 'DELETE', path: '/Schemas/x' }]),
      // A path, not a URL: no query nor fragment; one resource, not a path below it.
      bulk([createUser('a', 'm1@bulk.test'), { method: 'DELETE', path: '/Users/x?y=1' }]),
      bulk([createUser('a', 'm1@bulk.test'), { method: 'DELETE', path: '/Users/x#y' }]),
      bulk([createUser('a', 'm1@bulk.test'), { method: 'DELETE', path: '/users/x/y' }]),
      bulk([createUser('a', 'm1@bulk.test'), { method: 'DELETE', path: '/usersx' }]),
      bulk([{ method: 'POST', path: '/users/x', bulkId: 'a', data: oktaUser('m4@bulk.test') }]),
    ];
    for (const body of refusals) {
      const res = await f.client.post('/Bulk', body).expect(400);
      expect(res.body).toMatchObject({ schemas: [ERROR], status: '400', scimType: 'invalidSyntax' });
    }
    await f.client.get('/Bulk').expect(405);
    expect(await f.ctx.sql`select count(*)::int as n from scim_users`).toEqual(before);
  });

  it('keeps to the token’s organization', async () => {
    const other = await createTestOrganization(f.ctx, 'bulk-other');
    const otherClient = scimClient(f.app, other.scimToken);
    const mine = (await send(f.client, bulk([createUser('own', 'own@bulk.test')])))[0]!;
    const outcomes = await send(
      otherClient,
      bulk([
        { method: 'PUT', path: `/Users/${idOf(mine)}`, data: oktaUser('own@bulk.test', { displayName: 'Taken' }) },
        {
          method: 'PATCH',
          path: `/Users/${idOf(mine)}`,
          data: { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { active: false } }] },
        },
        { method: 'DELETE', path: `/Users/${idOf(mine)}` },
        {
          method: 'POST',
          path: '/Groups',
          bulkId: 'theirs',
          data: { schemas: [GROUP], displayName: 'Theirs', members: [{ value: idOf(mine) }] },
        },
      ]),
    );
    expect(outcomes.slice(0, 3).map((o) => o.status)).toEqual(['404', '404', '404']);
    expect(Number(outcomes[3]!.status)).toBeGreaterThanOrEqual(400);
    const still = await f.client.get(`/Users/${idOf(mine)}`).expect(200);
    expect(still.body).toMatchObject({ active: true, displayName: 'own Tester' });
    const theirs = await otherClient.get('/Groups?filter=displayName eq "Theirs"').expect(200);
    expect(theirs.body.totalResults).toBe(0);
  });

  it('writes the same audit entries and events as the single requests', async () => {
    // The same story told once request by request and once in one bulk, by two organizations.
    const single = await createTestOrganization(f.ctx, 'bulk-single');
    const batched = await createTestOrganization(f.ctx, 'bulk-batched');
    const one = scimClient(f.app, single.scimToken);
    // Two plain creates (which a bulk runs in one shared transaction), then a story of one user.
    await one.post('/Users', oktaUser('ivy@story.test')).expect(201);
    await one.post('/Users', oktaUser('jon@story.test', { active: 'True' })).expect(201);
    const user = (await one.post('/Users', oktaUser('hal@story.test')).expect(201)).body;
    const group = (
      await one.post('/Groups', { schemas: [GROUP], displayName: 'Story', members: [{ value: user.id }] }).expect(201)
    ).body;
    await one.patch(`/Users/${user.id}`, [{ op: 'replace', value: { active: false } }]).expect(200);
    await one.put(`/Users/${user.id}`, oktaUser('hal@story.test', { title: 'Chief' })).expect(200);
    await one.patch(`/Groups/${group.id}`, [{ op: 'remove', path: 'members' }]).expect(204);
    await one.delete(`/Groups/${group.id}`).expect(204);
    await one.delete(`/Users/${user.id}`).expect(204);

    const outcomes = await send(
      scimClient(f.app, batched.scimToken),
      bulk([
        createUser('ivy', 'ivy@story.test'),
        createUser('jon', 'jon@story.test', { active: 'True' }),
        createUser('hal', 'hal@story.test'),
        {
          method: 'POST',
          path: '/Groups',
          bulkId: 'story',
          data: { schemas: [GROUP], displayName: 'Story', members: [{ value: 'bulkId:hal' }] },
        },
        {
          method: 'PATCH',
          path: '/Users/bulkId:hal',
          data: { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { active: false } }] },
        },
        { method: 'PUT', path: '/Users/bulkId:hal', data: oktaUser('hal@story.test', { title: 'Chief' }) },
        {
          method: 'PATCH',
          path: '/Groups/bulkId:story',
          data: { schemas: [PATCH_OP], Operations: [{ op: 'remove', path: 'members' }] },
        },
        { method: 'DELETE', path: '/Groups/bulkId:story' },
        { method: 'DELETE', path: '/Users/bulkId:hal' },
      ]),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['201', '201', '201', '201', '200', '200', '204', '204', '204']);
    expect(await history(single.organization.id)).toEqual(await history(batched.organization.id));
    expect((await history(batched.organization.id)).audit.length).toBeGreaterThan(8);
  });

  it('charges the rate limit one token per operation', async () => {
    const limited = await scimFixture('bulk-limited', { SCIM_RATE_LIMIT: '0.01', SCIM_RATE_BURST: '5' });
    try {
      const outcomes = await send(
        limited.client,
        bulk([1, 2, 3, 4].map((i) => createUser(`r${i}`, `r${i}@bulk.test`))),
      );
      expect(outcomes.map((o) => o.status)).toEqual(['201', '201', '201', '201']);
      // One token is left: a bulk of two operations is refused, and then anything else.
      const refused = await limited.client
        .post('/Bulk', bulk([createUser('r5', 'r5@bulk.test'), createUser('r6', 'r6@bulk.test')]))
        .expect(429);
      expect(refused.headers['retry-after']).toBeDefined();
      await limited.client.get('/Users').expect(429);
      expect(await limited.ctx.sql`select count(*)::int as n from scim_users`).toEqual([{ n: 4 }]);
    } finally {
      await limited.ctx.database.close();
    }
  });

  it('refuses more operations or more bytes than advertised with 413, naming the limit', async () => {
    const small = await scimFixture('bulk-small', {
      SCIM_BULK_MAX_OPERATIONS: '2',
      SCIM_BULK_MAX_PAYLOAD_BYTES: '2048',
    });
    try {
      const config = await small.client.get('/ServiceProviderConfig').expect(200);
      expect(config.body.bulk).toEqual({ supported: true, maxOperations: 2, maxPayloadSize: 2048 });
      const many = await small.client
        .post('/Bulk', bulk([1, 2, 3].map((i) => createUser(`t${i}`, `t${i}@bulk.test`))))
        .expect(413);
      expect(many.type).toBe('application/scim+json');
      expect(many.body).toEqual({
        schemas: [ERROR],
        status: '413',
        detail: 'the bulk request has 3 operations; maxOperations is 2',
      });
      const large = await small.client
        .post('/Bulk', bulk([createUser('big', 'big@bulk.test', { title: 'x'.repeat(3000) })]))
        .expect(413);
      expect(large.body).toEqual({
        schemas: [ERROR],
        status: '413',
        detail: 'the bulk request is larger than maxPayloadSize (2048 bytes)',
      });
      await send(small.client, bulk([createUser('t1', 't1@bulk.test'), createUser('t2', 't2@bulk.test')]));
      expect(await small.ctx.sql`select count(*)::int as n from scim_users`).toEqual([{ n: 2 }]);
    } finally {
      await small.ctx.database.close();
    }
  });
});

describe('SCIM /Bulk: each operation’s version is its If-Match', () => {
  const etag = (res: { headers: Record<string, string> }) => res.headers.etag!;
  const userEtag = async (id: string) => etag(await f.client.get(`/Users/${id}`).expect(200));
  const groupEtag = async (id: string) => etag(await f.client.get(`/Groups/${id}`).expect(200));
  const newUser = async (email: string) =>
    (await f.client.post('/Users', oktaUser(email)).expect(201)).body.id as string;
  const auditCount = async () =>
    (await f.ctx.sql`select count(*)::int as n from audit_log where organization_id = ${f.org.organization.id}`)[0]!.n;
  const patch = (path: string, operations: unknown[], version?: string) => ({
    method: 'PATCH',
    path,
    ...(version !== undefined ? { version } : {}),
    data: { schemas: [PATCH_OP], Operations: operations },
  });

  it('a stale version is refused with the 412 of the single request, changes nothing, and counts for failOnErrors', async () => {
    const id = await newUser('stale@version.test');
    const stale = await userEtag(id);
    await f.client.patch(`/Users/${id}`, [{ op: 'replace', path: 'title', value: 'First' }]).expect(200);
    const current = (await f.client.get(`/Users/${id}`).expect(200)).body;
    const audits = await auditCount();

    const title = [{ op: 'replace', path: 'title', value: 'Patched' }];
    const deactivate = [{ op: 'replace', value: { active: false } }];
    const singles = [
      f.client.put(`/Users/${id}`, oktaUser('stale@version.test', { title: 'Put' })),
      f.client.patch(`/Users/${id}`, title),
      f.client.patch(`/Users/${id}`, deactivate),
      f.client.delete(`/Users/${id}`),
    ];
    const refusals: unknown[] = [];
    for (const single of singles) refusals.push((await single.set('If-Match', stale).expect(412)).body);

    const outcomes = await send(
      f.client,
      bulk([
        { method: 'PUT', path: `/Users/${id}`, version: stale, data: oktaUser('stale@version.test', { title: 'Put' }) },
        patch(`/Users/${id}`, title, stale),
        patch(`/Users/${id}`, deactivate, stale),
        { method: 'DELETE', path: `/Users/${id}`, version: stale },
      ]),
    );
    const location = `https://orgsync.test/scim/v2/Users/${id}`;
    expect(outcomes).toEqual(
      ['PUT', 'PATCH', 'PATCH', 'DELETE'].map((method, i) => ({
        method,
        location,
        status: '412',
        response: refusals[i],
      })),
    );
    expect(refusals[0]).toEqual({ schemas: [ERROR], status: '412', detail: expect.stringContaining('If-Match') });
    expect((await f.client.get(`/Users/${id}`).expect(200)).body).toEqual(current);
    expect(await auditCount()).toBe(audits);

    // A refused operation is an error: with failOnErrors 1 the create after it does not run.
    const stopped = await send(
      f.client,
      bulk([patch(`/Users/${id}`, title, stale), createUser('late', 'late@version.test')], { failOnErrors: 1 }),
    );
    expect(stopped.map((o) => o.status)).toEqual(['412']);
    await f.client.get('/Users?filter=userName eq "late@version.test"').expect(200, /"totalResults":0/);
  });

  it('the current version, as the single request takes it (weak, strong, a list, *), lets each write through and answers the new one', async () => {
    const id = await newUser('match@version.test');
    const tags = [await userEtag(id)];
    const run = async (operation: Record<string, unknown>, status: string) => {
      const [outcome] = await send(f.client, bulk([operation]));
      expect(outcome).toMatchObject({ status, location: `https://orgsync.test/scim/v2/Users/${id}` });
      if (status !== '204') {
        expect(outcome!.version).toBe(await userEtag(id));
        expect(tags).not.toContain(outcome!.version);
        tags.push(outcome!.version!);
      }
    };
    await run(patch(`/Users/${id}`, [{ op: 'replace', path: 'title', value: 'A' }], tags.at(-1)), '200');
    // The strong form of the tag compares equal (weak comparison), as in If-Match.
    await run(
      {
        method: 'PUT',
        path: `/Users/${id}`,
        version: tags.at(-1)!.slice(2),
        data: oktaUser('match@version.test', { title: 'B' }),
      },
      '200',
    );
    await run(patch(`/Users/${id}`, [{ op: 'replace', value: { active: false } }], `W/"0", ${tags.at(-1)}`), '200');
    await run(patch(`/Users/${id}`, [{ op: 'replace', value: { active: true } }], '*'), '200');
    await run({ method: 'DELETE', path: `/Users/${id}`, version: tags.at(-1) }, '204');
    await f.client.get(`/Users/${id}`).expect(404);
    // A version naming no resource still gets the 404 the single request gets.
    const [gone] = await send(f.client, bulk([{ method: 'DELETE', path: `/Users/${id}`, version: '*' }]));
    expect(gone!.status).toBe('404');
  });

  it('an empty or blank version is no If-Match, as an empty If-Match header is; "" is a tag that never matches', async () => {
    const id = await newUser('blank@version.test');
    const title = (value: string) => [{ op: 'replace', path: 'title', value }];
    await f.client.patch(`/Users/${id}`, title('Single')).set('If-Match', '').expect(200);
    await f.client.patch(`/Users/${id}`, title('Single')).set('If-Match', '""').expect(412);
    const outcomes = await send(
      f.client,
      bulk([
        patch(`/Users/${id}`, title('Empty'), ''),
        patch(`/Users/${id}`, title('Blank'), '  '),
        patch(`/Users/${id}`, title('Empty tag'), '""'),
      ]),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['200', '200', '412']);
    expect((await f.client.get(`/Users/${id}`).expect(200)).body.title).toBe('Blank');
  });

  it('a version on a POST is ignored, as an If-Match on the single POST is', async () => {
    await f.client.post('/Users', oktaUser('single-post@version.test')).set('If-Match', 'W/"999"').expect(201);
    const [user, group] = await send(
      f.client,
      bulk([
        { ...createUser('p', 'bulk-post@version.test'), version: 'W/"999"' },
        {
          method: 'POST',
          path: '/Groups',
          bulkId: 'g',
          version: 'W/"999"',
          data: { schemas: [GROUP], displayName: 'Posted' },
        },
      ]),
    );
    expect(user).toMatchObject({ status: '201', version: await userEtag(idOf(user!)) });
    expect(group).toMatchObject({ status: '201', version: await groupEtag(idOf(group!)) });
  });

  it('group member changes bump the version as in single requests, and a stale version then changes nothing', async () => {
    const [a, b, c] = await Promise.all(['ga', 'gb', 'gc'].map((n) => newUser(`${n}@version.test`)));
    const [created] = await send(
      f.client,
      bulk([
        {
          method: 'POST',
          path: '/Groups',
          bulkId: 'g',
          data: { schemas: [GROUP], displayName: 'Versioned', members: [{ value: a }] },
        },
      ]),
    );
    const id = idOf(created!);
    const v0 = created!.version!;
    expect(v0).toBe(await groupEtag(id));

    // A member added: 204, and the version answered is the group's new one.
    const [added] = await send(
      f.client,
      bulk([patch(`/Groups/${id}`, [{ op: 'add', path: 'members', value: [{ value: b }] }], v0)]),
    );
    expect(added).toEqual({
      method: 'PATCH',
      location: `https://orgsync.test/scim/v2/Groups/${id}`,
      version: await groupEtag(id),
      status: '204',
    });
    const v1 = added!.version!;
    expect(v1).not.toBe(v0);

    // Deprovisioning a member changes the group's membership, and so its version, as the single DELETE does.
    const members = async () =>
      ((await f.client.get(`/Groups/${id}`).expect(200)).body.members as { value: string }[])
        .map((m) => m.value)
        .sort();
    const before = (await f.client.get(`/Groups/${id}`).expect(200)).body;
    const outcomes = await send(
      f.client,
      bulk([
        { method: 'DELETE', path: `/Users/${b}` },
        patch(`/Groups/${id}`, [{ op: 'add', path: 'members', value: [{ value: c }] }], v1),
        patch(`/Groups/${id}`, [{ op: 'remove', path: `members[value eq "${a}"]` }], v1),
        patch(
          `/Groups/${id}`,
          [
            { op: 'replace', path: 'displayName', value: 'Other' },
            { op: 'remove', path: 'members' },
          ],
          v0,
        ),
        {
          method: 'PUT',
          path: `/Groups/${id}`,
          version: v1,
          data: { schemas: [GROUP], displayName: 'Versioned', members: [] },
        },
        { method: 'DELETE', path: `/Groups/${id}`, version: v1 },
      ]),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['204', '412', '412', '412', '412', '412']);
    const v2 = await groupEtag(id);
    expect([v0, v1]).not.toContain(v2);
    expect(await members()).toEqual([a]);
    expect((await f.client.get(`/Groups/${id}`).expect(200)).body).toMatchObject({
      displayName: before.displayName,
      meta: { version: v2 },
    });

    // The version the group is at lets a replacement through, and answers the next one.
    const [put] = await send(
      f.client,
      bulk([
        {
          method: 'PUT',
          path: `/Groups/${id}`,
          version: v2,
          data: { schemas: [GROUP], displayName: 'Versioned', members: [{ value: c }] },
        },
      ]),
    );
    expect(put).toMatchObject({ status: '200', version: await groupEtag(id) });
    expect(await members()).toEqual([c]);
  });
});

/**
 * An organization's audit entries and events in order, with ids, times and the organization's
 * own names made comparable: each uuid becomes the order of its first appearance.
 */
async function history(organizationId: string) {
  const audit = await f.ctx.sql`
    select channel, actor_type, actor_name, action, target_type, target_id, details
    from audit_log where organization_id = ${organizationId} and channel = 'scim' order by id`;
  const events = await f.ctx.sql`
    select type, payload from outbox where organization_id = ${organizationId}
      and payload -> 'actor' ->> 'channel' = 'scim' order by id`;
  const seen = new Map<string, string>();
  const text = JSON.stringify({ audit, events }).replace(
    /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g,
    (uuid) => {
      if (!seen.has(uuid)) seen.set(uuid, `<id ${seen.size}>`);
      return seen.get(uuid)!;
    },
  );
  return JSON.parse(text) as { audit: unknown[]; events: unknown[] };
}

describe('SCIM /Bulk creates in several transactions at once', () => {
  it('each count in a counter shard of its own: every create succeeds and nothing deadlocks', async () => {
    // 300 creates: six transactions of 50, four at once (SCIM_BULK_CONCURRENCY's default). Each
    // create keeps counter rows locked until its transaction commits (migrations 094 and 111);
    // transactions taking rows of many shards side by side would take them in different orders,
    // so each takes a shard no other holds (migration 118).
    const deadlocks = () => deadlocksSoFar(f.ctx.sql);
    const before = await deadlocks();
    const outcomes = await send(
      f.client,
      bulk(Array.from({ length: 300 }, (_, i) => createUser(`many${i}`, `many${i}@bulk-many.test`))),
    );
    expect(outcomes.filter((o) => o.status !== '201').map((o) => [o.bulkId, o.status, o.response?.detail])).toEqual([]);
    const [listed] = await f.ctx.sql<{ n: number }[]>`
      select count(*)::int as n from scim_users where user_name like 'many%@bulk-many.test'`;
    expect(listed!.n).toBe(300);
    expect(await deadlocks()).toBe(before);
  });
});
