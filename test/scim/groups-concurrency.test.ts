import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestOrganization } from '../support/context.ts';
import { oktaUser, scimClient, scimFixture } from '../support/scim.ts';

let f: Awaited<ReturnType<typeof scimFixture>>;
beforeAll(async () => {
  // Concurrency needs real connections: on the embedded database the pool has one.
  f = await scimFixture('concurrency-org');
});
afterAll(async () => f.ctx.database.close());

const createUsers = (prefix: string, n: number) =>
  Promise.all(
    Array.from(
      { length: n },
      async (_, i) => (await f.client.post('/Users', oktaUser(`${prefix}${i}@c.test`)).expect(201)).body.id as string,
    ),
  );
const memberIds = async (groupId: string) =>
  ((await f.client.get(`/Groups/${groupId}`).expect(200)).body.members ?? [])
    .map((m: { value: string }) => m.value)
    .sort();

describe('Okta group pushes', () => {
  it('PUT replaces the member set by difference; a PATCH mixing remove and add applies as one', async () => {
    const [u1, u2, u3, u4] = await createUsers('okta-g', 4);
    const group = (
      await f.client.post('/Groups', { displayName: 'Okta Push', members: [{ value: u1 }, { value: u2 }] }).expect(201)
    ).body;
    expect(group.members.map((m: { value: string }) => m.value).sort()).toEqual([u1, u2].sort());

    await f.client
      .put(`/Groups/${group.id}`, { displayName: 'Okta Push', members: [{ value: u2 }, { value: u3 }] })
      .expect(200);
    expect(await memberIds(group.id)).toEqual([u2, u3].sort());
    const audit = await f.ctx
      .sql`select details from audit_log where target_id = ${group.id} and action = 'group.members_changed' order by id desc limit 1`;
    expect(audit[0]!.details).toEqual({ added: [u3], removed: [u1] });

    await f.client
      .patch(`/Groups/${group.id}`, [
        { op: 'remove', path: `members[value eq "${u2}"]` },
        { op: 'add', path: 'members', value: [{ value: u4 }] },
      ])
      .expect(204);
    expect(await memberIds(group.id)).toEqual([u3, u4].sort());

    // One bad operation: none of the operations apply.
    const failed = await f.client.patch(`/Groups/${group.id}`, [
      { op: 'remove', path: `members[value eq "${u3}"]` },
      { op: 'add', path: 'members', value: [{ value: '00000000-0000-4000-8000-00000000dead' }] },
    ]);
    expect(failed.status).toBe(400);
    expect(await memberIds(group.id)).toEqual([u3, u4].sort());

    // Okta's pathless replace renames.
    await f.client
      .patch(`/Groups/${group.id}`, [{ op: 'replace', value: { id: group.id, displayName: 'Okta Renamed' } }])
      .expect(204);
    expect((await f.client.get(`/Groups/${group.id}?excludedAttributes=members`).expect(200)).body).toMatchObject({
      displayName: 'Okta Renamed',
    });

    await f.client.delete(`/Groups/${group.id}`).expect(204);
    await f.client.get(`/Groups/${group.id}`).expect(404);
  });
});

describe('concurrency', () => {
  it('concurrent PATCHes to one user lose no update', async () => {
    const [id] = await createUsers('patchy', 1);
    const attributes = [
      'title',
      'nickName',
      'userType',
      'preferredLanguage',
      'locale',
      'profileUrl',
      'displayName',
      'timezone',
    ];
    await Promise.all(
      attributes.map((a, i) =>
        f.client
          .patch(`/Users/${id}`, [
            {
              op: 'replace',
              path: a,
              value: a === 'locale' ? 'en-GB' : a === 'profileUrl' ? 'https://p.test/x' : `${a}-${i}`,
            },
          ])
          .expect(200),
      ),
    );
    const user = (await f.client.get(`/Users/${id}`).expect(200)).body;
    for (const a of attributes) expect(user[a], a).toBeDefined();
    expect(user.meta.version).toBe(`W/"${1 + attributes.length}"`);
  });

  it('concurrent member adds to one group lose none', async () => {
    const users = await createUsers('member', 20);
    const group = (await f.client.post('/Groups', { displayName: 'Concurrent' }).expect(201)).body;
    await Promise.all(
      users.map((value) =>
        f.client.patch(`/Groups/${group.id}`, [{ op: 'add', path: 'members', value: [{ value }] }]).expect(204),
      ),
    );
    expect(await memberIds(group.id)).toEqual([...users].sort());
  });

  it('two concurrent creates of one userName: one 201, one 409 uniqueness', async () => {
    const results = await Promise.all([0, 1].map(() => f.client.post('/Users', oktaUser('twin@c.test'))));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
    expect(results.find((r) => r.status === 409)!.body.scimType).toBe('uniqueness');
  });
});

describe('tenant isolation', () => {
  it("organization A's token can neither read nor change B's users or groups", async () => {
    const b = await createTestOrganization(f.ctx, 'concurrency-other');
    const clientB = scimClient(f.app, b.scimToken);
    const userB = (await clientB.post('/Users', oktaUser('private@b.test')).expect(201)).body;
    const groupB = (
      await clientB.post('/Groups', { displayName: 'B only', members: [{ value: userB.id }] }).expect(201)
    ).body;

    await f.client.get(`/Users/${userB.id}`).expect(404);
    expect(
      (await f.client.get(`/Users?filter=${encodeURIComponent('userName eq "private@b.test"')}`).expect(200)).body
        .totalResults,
    ).toBe(0);
    await f.client.patch(`/Users/${userB.id}`, [{ op: 'replace', value: { active: false } }]).expect(404);
    await f.client.put(`/Users/${userB.id}`, oktaUser('private@b.test')).expect(404);
    await f.client.delete(`/Users/${userB.id}`).expect(404);
    await f.client.get(`/Groups/${groupB.id}`).expect(404);
    await f.client.patch(`/Groups/${groupB.id}`, [{ op: 'remove', path: 'members' }]).expect(404);
    await f.client.delete(`/Groups/${groupB.id}`).expect(404);
    // Nor can A put B's user into its own group.
    const groupA = (await f.client.post('/Groups', { displayName: 'A group' }).expect(201)).body;
    await f.client
      .patch(`/Groups/${groupA.id}`, [{ op: 'add', path: 'members', value: [{ value: userB.id }] }])
      .expect(400);

    const stillB = (await clientB.get(`/Groups/${groupB.id}`).expect(200)).body;
    expect(stillB.members.map((m: { value: string }) => m.value)).toEqual([userB.id]);
    expect((await clientB.get(`/Users/${userB.id}`).expect(200)).body.active).toBe(true);
  });
});
