import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oktaUser, scimFixture } from '../support/scim.ts';

/** RFC 7644 §3.14: meta.version, ETag, If-Match (412) and If-None-Match (304), over HTTP. */

let f: Awaited<ReturnType<typeof scimFixture>>;
beforeAll(async () => {
  f = await scimFixture('etag-org');
});
afterAll(async () => f.ctx.database.close());

type Answer = { status: number; headers: Record<string, string>; body: { meta?: { version?: string } } };

/** The ETag of an answer; for one with a body, it is the body's meta.version. */
function etag(res: Answer): string {
  const tag = res.headers.etag;
  expect(tag).toMatch(/^W\/"\d+"$/);
  if (res.body?.meta) expect(res.body.meta.version).toBe(tag);
  return tag!;
}

const createUser = async (email: string) => (await f.client.post('/Users', oktaUser(email)).expect(201)).body;
const userEtag = async (id: string) => etag(await f.client.get(`/Users/${id}`).expect(200));
const groupEtag = async (id: string) => etag(await f.client.get(`/Groups/${id}`).expect(200));
const auditCount = async () =>
  Number(
    (await f.ctx.sql`select count(*)::int as n from audit_log where organization_id = ${f.org.organization.id}`)[0]!.n,
  );
const members = async (groupId: string) =>
  ((await f.client.get(`/Groups/${groupId}`).expect(200)).body.members ?? [])
    .map((m: { value: string }) => m.value)
    .sort();

describe('ServiceProviderConfig', () => {
  it('advertises etag support', async () => {
    const res = await f.client.get('/ServiceProviderConfig').expect(200);
    expect(res.body.etag).toEqual({ supported: true });
  });
});

describe('Users', () => {
  it('every change gives a new version, in the ETag header and meta.version, and in lists', async () => {
    const created = await f.client.post('/Users', oktaUser('ver@e.test')).expect(201);
    const id = created.body.id as string;
    const seen = [etag(created)];
    expect(await userEtag(id)).toBe(seen[0]);

    const put = await f.client.put(`/Users/${id}`, oktaUser('ver@e.test', { title: 'Engineer' })).expect(200);
    seen.push(etag(put));
    const patched = await f.client.patch(`/Users/${id}`, [{ op: 'replace', path: 'nickName', value: 'V' }]).expect(200);
    seen.push(etag(patched));
    const deactivated = await f.client.patch(`/Users/${id}`, [{ op: 'replace', value: { active: false } }]).expect(200);
    seen.push(etag(deactivated));
    expect(new Set(seen).size).toBe(seen.length);
    expect(await userEtag(id)).toBe(seen.at(-1));

    const list = await f.client.get(`/Users?filter=${encodeURIComponent('userName eq "ver@e.test"')}`).expect(200);
    expect(list.body.Resources[0].meta.version).toBe(seen.at(-1));
    expect(list.headers.etag).toBeUndefined();
  });

  it('a stale If-Match is refused with 412 on PUT, PATCH and DELETE, and nothing changes', async () => {
    const { id } = await createUser('stale@e.test');
    const stale = await userEtag(id);
    await f.client.patch(`/Users/${id}`, [{ op: 'replace', path: 'title', value: 'First' }]).expect(200);
    const current = await f.client.get(`/Users/${id}`).expect(200);
    const audits = await auditCount();

    const attempts = [
      f.client.put(`/Users/${id}`, oktaUser('stale@e.test', { title: 'Put' })),
      f.client.patch(`/Users/${id}`, [{ op: 'replace', path: 'title', value: 'Patched' }]),
      f.client.patch(`/Users/${id}`, [{ op: 'replace', value: { active: false } }]),
      f.client.delete(`/Users/${id}`),
    ];
    for (const attempt of attempts) {
      const res = await attempt.set('If-Match', stale);
      expect(res.status).toBe(412);
      expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '412' });
    }
    expect((await f.client.get(`/Users/${id}`).expect(200)).body).toEqual(current.body);
    expect(await auditCount()).toBe(audits);

    // A tag that is no version of ours never matches either.
    await f.client.delete(`/Users/${id}`).set('If-Match', 'W/"not-a-version"').expect(412);
    await f.client.delete(`/Users/${id}`).set('If-Match', 'W/"999999999999999"').expect(412);
  });

  it('the current version, one of several, or * lets the write through; a missing user is 404', async () => {
    const { id } = await createUser('match@e.test');
    let tag = await userEtag(id);
    tag = etag(
      await f.client
        .patch(`/Users/${id}`, [{ op: 'replace', path: 'title', value: 'A' }])
        .set('If-Match', tag)
        .expect(200),
    );
    tag = etag(
      await f.client
        .put(`/Users/${id}`, oktaUser('match@e.test', { title: 'B' }))
        .set('If-Match', `W/"0", ${tag}`)
        .expect(200),
    );
    // The strong form of the same tag compares equal (weak comparison).
    tag = etag(
      await f.client
        .patch(`/Users/${id}`, [{ op: 'replace', value: { active: false } }])
        .set('If-Match', tag.slice(2))
        .expect(200),
    );
    await f.client
      .patch(`/Users/${id}`, [{ op: 'replace', value: { active: true } }])
      .set('If-Match', '*')
      .expect(200);
    await f.client.delete(`/Users/${id}`).set('If-Match', '*').expect(204);
    await f.client.delete(`/Users/${id}`).set('If-Match', '*').expect(404);
    await f.client.delete('/Users/00000000-0000-4000-8000-000000000000').set('If-Match', tag).expect(404);
  });

  it('If-None-Match on GET answers 304 without a body when it matches', async () => {
    const { id } = await createUser('cache@e.test');
    const tag = await userEtag(id);
    const hit = await f.client.get(`/Users/${id}`).set('If-None-Match', tag).expect(304);
    expect(hit.text ?? '').toBe('');
    expect(hit.headers.etag).toBe(tag);
    await f.client.get(`/Users/${id}`).set('If-None-Match', '*').expect(304);
    // A blank header names no tag: no condition.
    await f.client.get(`/Users/${id}`).set('If-None-Match', '').expect(200);
    await f.client.patch(`/Users/${id}`, [{ op: 'replace', path: 'title', value: 'New' }]).expect(200);
    const miss = await f.client.get(`/Users/${id}`).set('If-None-Match', tag).expect(200);
    expect(etag(miss)).not.toBe(tag);
  });
});

describe('Groups', () => {
  it('every change gives a new version: its own, SCIM member changes, and member changes made elsewhere', async () => {
    const u = await Promise.all(['g1', 'g2', 'g3', 'g4'].map((n) => createUser(`${n}@e.test`)));
    const [u1, u2, u3, u4] = u.map((x) => x.id as string);
    const created = await f.client.post('/Groups', { displayName: 'Versioned', members: [{ value: u1 }] }).expect(201);
    const id = created.body.id as string;
    const seen = [etag(created)];
    const step = async (change: () => Promise<unknown>) => {
      await change();
      const tag = await groupEtag(id);
      expect(seen).not.toContain(tag);
      seen.push(tag);
    };
    // Each kind of change, and the ETag of the answer is the version the group is at then.
    await step(async () => {
      const res = await f.client.patch(`/Groups/${id}`, [{ op: 'add', path: 'members', value: [{ value: u2 }] }]);
      expect(res.status).toBe(204);
      expect(res.headers.etag).toBe(await groupEtag(id));
    });
    await step(() =>
      f.client.patch(`/Groups/${id}`, [{ op: 'remove', path: `members[value eq "${u2}"]` }]).expect(204),
    );
    await step(() =>
      f.client.patch(`/Groups/${id}`, [{ op: 'replace', path: 'displayName', value: 'Renamed' }]).expect(204),
    );
    await step(async () => {
      const res = await f.client
        .put(`/Groups/${id}`, { displayName: 'Renamed', members: [{ value: u1 }, { value: u3 }, { value: u4 }] })
        .expect(200);
      expect(etag(res)).toBe(await groupEtag(id));
    });
    // The admin API removes a member from the organization, and so from the group.
    await step(() =>
      request(f.app)
        .delete(`/api/members/${u3}?overrideIdp=true`)
        .set('authorization', `Bearer ${f.org.adminKey}`)
        .expect(204),
    );
    // Deprovisioning a user takes them out of their groups.
    await step(() => f.client.delete(`/Users/${u4}`).expect(204));
    expect(await members(id)).toEqual([u1]);

    // An add that changes nothing (already a member) leaves the version as it is.
    await f.client.patch(`/Groups/${id}`, [{ op: 'add', path: 'members', value: [{ value: u1 }] }]).expect(204);
    expect(await groupEtag(id)).toBe(seen.at(-1));

    const list = await f.client.get(`/Groups?filter=${encodeURIComponent('displayName eq "Renamed"')}`).expect(200);
    expect(list.body.Resources[0].meta.version).toBe(seen.at(-1));
  });

  it('a stale If-Match is refused with 412 on PUT, PATCH and DELETE, and nothing changes', async () => {
    const [a, b] = await Promise.all([createUser('ga@e.test'), createUser('gb@e.test')]);
    const id = (await f.client.post('/Groups', { displayName: 'Guarded', members: [{ value: a.id }] }).expect(201)).body
      .id as string;
    const stale = await groupEtag(id);
    await f.client.patch(`/Groups/${id}`, [{ op: 'add', path: 'members', value: [{ value: b.id }] }]).expect(204);
    const current = await f.client.get(`/Groups/${id}`).expect(200);
    const audits = await auditCount();

    const attempts = [
      f.client.put(`/Groups/${id}`, { displayName: 'Guarded', members: [] }),
      f.client.patch(`/Groups/${id}`, [{ op: 'add', path: 'members', value: [{ value: a.id }, { value: b.id }] }]),
      f.client.patch(`/Groups/${id}`, [{ op: 'remove', path: `members[value eq "${a.id}"]` }]),
      f.client.patch(`/Groups/${id}`, [
        { op: 'replace', path: 'displayName', value: 'Other' },
        { op: 'remove', path: 'members' },
      ]),
      f.client.delete(`/Groups/${id}`),
    ];
    for (const attempt of attempts) {
      const res = await attempt.set('If-Match', stale);
      expect(res.status).toBe(412);
      expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '412' });
    }
    expect((await f.client.get(`/Groups/${id}`).expect(200)).body).toEqual(current.body);
    expect(await auditCount()).toBe(audits);
  });

  it('the current version or * lets writes through; If-None-Match answers 304', async () => {
    const a = await createUser('gc@e.test');
    const id = (await f.client.post('/Groups', { displayName: 'Matched' }).expect(201)).body.id as string;
    let tag = await groupEtag(id);
    await f.client.get(`/Groups/${id}`).set('If-None-Match', tag).expect(304);
    await f.client.get(`/Groups/${id}?excludedAttributes=members`).set('If-None-Match', `W/"0", ${tag}`).expect(304);

    const added = await f.client
      .patch(`/Groups/${id}`, [{ op: 'add', path: 'members', value: [{ value: a.id }] }])
      .set('If-Match', tag)
      .expect(204);
    expect(added.headers.etag).not.toBe(tag);
    expect(await members(id)).toEqual([a.id]);
    await f.client.get(`/Groups/${id}`).set('If-None-Match', tag).expect(200);
    tag = await groupEtag(id);
    expect(added.headers.etag).toBe(tag);

    tag = etag(await f.client.put(`/Groups/${id}`, { displayName: 'Matched 2' }).set('If-Match', tag).expect(200));
    await f.client
      .patch(`/Groups/${id}`, [{ op: 'replace', path: 'displayName', value: 'Matched 3' }])
      .set('If-Match', '*')
      .expect(204);
    await f.client.delete(`/Groups/${id}`).set('If-Match', tag).expect(412);
    await f.client.delete(`/Groups/${id}`).set('If-Match', 'W/"999999999999999"').expect(412);
    await f.client
      .delete(`/Groups/${id}`)
      .set('If-Match', await groupEtag(id))
      .expect(204);
    await f.client.delete(`/Groups/${id}`).set('If-Match', '*').expect(404);
  });

  it('concurrent member adds to one group all succeed, and the group ends at a version none saw before', async () => {
    const users = await Promise.all(Array.from({ length: 16 }, (_, i) => createUser(`conc${i}@e.test`)));
    const id = (await f.client.post('/Groups', { displayName: 'Concurrent' }).expect(201)).body.id as string;
    const before = await groupEtag(id);
    const answers = await Promise.all(
      users.map((u) => f.client.patch(`/Groups/${id}`, [{ op: 'add', path: 'members', value: [{ value: u.id }] }])),
    );
    expect(answers.map((r) => r.status)).toEqual(users.map(() => 204));
    expect(await members(id)).toEqual(users.map((u) => u.id as string).sort());

    const version = (tag: string) => Number(/\d+/.exec(tag)![0]);
    const final = await groupEtag(id);
    expect(final).not.toBe(before);
    // Each answer names a version the group had by then; the final one counts every add.
    expect(version(final)).toBe(version(before) + users.length);
    for (const answer of answers) expect(version(etag(answer))).toBeLessThanOrEqual(version(final));
    await f.client
      .patch(`/Groups/${id}`, [{ op: 'remove', path: 'members' }])
      .set('If-Match', before)
      .expect(412);
  });

  it('of concurrent writes made on the same If-Match, exactly one goes through', async () => {
    const users = await Promise.all(Array.from({ length: 8 }, (_, i) => createUser(`race${i}@e.test`)));
    const id = (await f.client.post('/Groups', { displayName: 'Raced' }).expect(201)).body.id as string;
    const tag = await groupEtag(id);
    const answers = await Promise.all(
      users.map((u) =>
        f.client
          .patch(`/Groups/${id}`, [{ op: 'add', path: 'members', value: [{ value: u.id }] }])
          .set('If-Match', tag),
      ),
    );
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([204, ...users.slice(1).map(() => 412)]);
    expect(await members(id)).toHaveLength(1);
  });
});
