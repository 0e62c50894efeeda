import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getMembership } from '../../src/core/memberships.ts';
import { scimFixture } from '../support/scim.ts';

/** Request shapes from Microsoft's "Develop and plan provisioning for a SCIM endpoint" tutorial. */
const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

let f: Awaited<ReturnType<typeof scimFixture>>;
beforeAll(async () => {
  f = await scimFixture('entra-org');
});
afterAll(async () => f.ctx.database.close());

const entraUser = (n: string) => ({
  schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', ENTERPRISE],
  externalId: `ext-${n}`,
  userName: `Test_User_${n}@entra.test`,
  active: true,
  emails: [{ primary: true, type: 'work', value: `Test_User_${n}@entra.test` }],
  meta: { resourceType: 'User' },
  name: { formatted: 'givenName familyName', familyName: 'familyName', givenName: 'givenName' },
  roles: [],
  [ENTERPRISE]: { employeeNumber: '42', department: 'Sales' },
});

describe('Entra ID provisioning sequence', () => {
  it('"Test connection" asks for a random id and gets a SCIM 404', async () => {
    const res = await f.client.get('/Users/00000000-0000-4000-8000-000000000000').expect(404);
    expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '404' });
    const notUuid = await f.client.get('/Users/not-a-guid').expect(404);
    expect(notUuid.body.status).toBe('404');
    const filtered = await f.client.get('/Users?filter=userName+eq+%22non-existent+user%22').expect(200);
    expect(filtered.body.totalResults).toBe(0);
  });

  it('creates, then patches the way Entra does', async () => {
    const created = (await f.client.post('/Users', { ...entraUser('a1'), title: 'Intern' }).expect(201)).body;
    expect(created[ENTERPRISE]).toEqual({ employeeNumber: '42', department: 'Sales' });
    expect(created.title).toBe('Intern');
    const id = created.id;

    const patched = await f.client
      .patch(`/Users/${id}`, [
        { op: 'Replace', path: 'name.givenName', value: 'Grace' },
        { op: 'Replace', path: 'emails[type eq "work"].value', value: 'grace@entra.test' },
        { op: 'Add', path: 'phoneNumbers[type eq "mobile"].value', value: '+1 555 0100' },
        { op: 'Add', path: `${ENTERPRISE}:manager`, value: 'manager-id-1' },
        { op: 'Replace', path: 'active', value: 'False' },
        { op: 'Replace', path: 'title', value: null },
      ])
      .expect(200);
    expect(patched.body.name.givenName).toBe('Grace');
    expect(patched.body.emails).toEqual([{ primary: true, type: 'work', value: 'grace@entra.test' }]);
    expect(patched.body.phoneNumbers).toEqual([{ type: 'mobile', value: '+1 555 0100' }]);
    expect(patched.body[ENTERPRISE].manager.value).toBe('manager-id-1');
    expect(patched.body.active).toBe(false);
    // `null` unsets the title it had: gone from the answer, a fresh read and the stored row.
    expect(patched.body).not.toHaveProperty('title');
    expect((await f.client.get(`/Users/${id}`).expect(200)).body).not.toHaveProperty('title');
    expect((await f.ctx.sql`select resource from scim_users where account_id = ${id}`)[0]!.resource).not.toHaveProperty(
      'title',
    );
    expect((await getMembership(f.ctx.sql, f.org.organization.id, id))!.status).toBe('suspended');

    // Pathless replace with dotted and URN keys; "True" as a boolean string.
    const pathless = await f.client
      .patch(`/Users/${id}`, [
        {
          op: 'replace',
          value: {
            'name.familyName': 'Hopper',
            [`${ENTERPRISE}:employeeNumber`]: '7',
            active: 'True',
            displayName: 'Grace Hopper',
          },
        },
      ])
      .expect(200);
    expect(pathless.body).toMatchObject({
      name: { givenName: 'Grace', familyName: 'Hopper' },
      displayName: 'Grace Hopper',
      active: true,
    });
    expect(pathless.body[ENTERPRISE].employeeNumber).toBe('7');

    // Removing the manager, and an empty Operations list (a no-op).
    const removed = await f.client.patch(`/Users/${id}`, [{ op: 'Remove', path: `${ENTERPRISE}:manager` }]).expect(200);
    expect(removed.body[ENTERPRISE].manager).toBeUndefined();
    const before = removed.body.meta.version;
    const noop = await f.client.patch(`/Users/${id}`, []).expect(200);
    expect(noop.body.meta.version).toBe(before);

    // The new work email is searchable at once.
    const byEmail = await f.client
      .get(`/Users?filter=${encodeURIComponent('emails.value eq "GRACE@entra.test"')}`)
      .expect(200);
    expect(byEmail.body.Resources.map((u: { id: string }) => u.id)).toEqual([id]);
  });

  it('a PUT to /users/{id} (express routes any case) is normalized as a User: a bare manager id', async () => {
    const created = (await f.client.post('/Users', entraUser('c3')).expect(201)).body;
    const replaced = await f.client.put(`/users/${created.id}`, {
      ...entraUser('c3'),
      [ENTERPRISE]: { employeeNumber: '42', manager: 'manager-id-2' },
    });
    expect(replaced.status, replaced.text).toBe(200);
    expect(replaced.body[ENTERPRISE].manager).toEqual({ value: 'manager-id-2' });
  });

  it('adds a work email to a user who has none', async () => {
    const { emails: _emails, ...noEmail } = entraUser('b2');
    const created = (await f.client.post('/Users', noEmail).expect(201)).body;
    const patched = await f.client
      .patch(`/Users/${created.id}`, [{ op: 'Add', path: 'emails[type eq "work"].value', value: 'b2@entra.test' }])
      .expect(200);
    expect(patched.body.emails).toEqual([{ type: 'work', value: 'b2@entra.test' }]);
  });

  it('groups: create, add and remove members by filter and by value array, rename, list without members', async () => {
    const users = await Promise.all(
      ['g1', 'g2', 'g3'].map(async (n) => (await f.client.post('/Users', entraUser(n)).expect(201)).body.id as string),
    );
    const created = await f.client
      .post('/Groups', {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
        externalId: 'grp-1',
        displayName: 'Engineers',
        members: [],
      })
      .expect(201);
    const group = created.body;
    expect(group).toMatchObject({ displayName: 'Engineers', externalId: 'grp-1', meta: { resourceType: 'Group' } });
    // An absolute location, also in the Location header of the 201 (RFC 7644 §3.3).
    expect(group.meta.location).toBe(`https://orgsync.test/scim/v2/Groups/${group.id}`);
    expect(created.headers.location).toBe(group.meta.location);

    await f.client
      .patch(`/Groups/${group.id}`, [{ op: 'Add', path: 'members', value: users.map((value) => ({ value })) }])
      .expect(204);
    await f.client
      .patch(`/Groups/${group.id}`, [{ op: 'Remove', path: `members[value eq "${users[0]}"]` }])
      .expect(204);
    await f.client
      .patch(`/Groups/${group.id}`, [{ op: 'Remove', path: 'members', value: [{ value: users[1] }] }])
      .expect(204);
    await f.client
      .patch(`/Groups/${group.id}`, [{ op: 'Replace', path: 'displayName', value: 'Engineering' }])
      .expect(204);

    const read = (await f.client.get(`/Groups/${group.id}`).expect(200)).body;
    expect(read.displayName).toBe('Engineering');
    expect(read.members.map((m: { value: string }) => m.value)).toEqual([users[2]]);
    expect(read.meta.location).toBe(`https://orgsync.test/scim/v2/Groups/${group.id}`);
    const withoutMembers = (await f.client.get(`/Groups/${group.id}?excludedAttributes=members`).expect(200)).body;
    expect(withoutMembers).toMatchObject({ id: group.id, displayName: 'Engineering' });
    expect(withoutMembers).not.toHaveProperty('members');

    const listed = await f.client
      .get(`/Groups?excludedAttributes=members&filter=${encodeURIComponent('displayName eq "engineering"')}`)
      .expect(200);
    expect(listed.body.totalResults).toBe(1);
    expect(listed.body.Resources[0].members).toBeUndefined();
    const byMember = await f.client
      .get(`/Groups?filter=${encodeURIComponent(`members[value eq "${users[2]}"]`)}&excludedAttributes=members`)
      .expect(200);
    expect(byMember.body.Resources.map((g: { id: string }) => g.id)).toEqual([group.id]);
  });
});
