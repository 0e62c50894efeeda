import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getMembership } from '../../src/core/memberships.ts';
import { scimFixture } from '../support/scim.ts';

let f: Awaited<ReturnType<typeof scimFixture>>;
beforeAll(async () => {
  f = await scimFixture('okta-org');
});
afterAll(async () => f.ctx.database.close());

describe('Okta provisioning sequence', () => {
  it('looks a user up, creates them (who joins), reads, deactivates, reactivates and replaces them', async () => {
    const lookup = await f.client
      .get('/Users?filter=userName%20eq%20%22isabella%40okta.test%22&startIndex=1&count=100')
      .expect(200);
    expect(lookup.headers['content-type']).toContain('application/scim+json');
    expect(lookup.body).toMatchObject({ totalResults: 0, Resources: [], startIndex: 1 });

    const created = await f.client
      .post('/Users', (await import('../support/scim.ts')).oktaUser('isabella@okta.test'))
      .expect(201);
    const user = created.body;
    expect(user).toMatchObject({
      userName: 'isabella@okta.test',
      active: true,
      externalId: '00uisabella',
      name: { givenName: 'isabella' },
    });
    expect(user.password).toBeUndefined();
    expect(user.meta).toMatchObject({
      resourceType: 'User',
      location: `https://orgsync.test/scim/v2/Users/${user.id}`,
      version: 'W/"1"',
    });
    expect(user.meta.created).toBeTruthy();
    const membership = await getMembership(f.ctx.sql, f.org.organization.id, user.id);
    expect(membership).toMatchObject({ status: 'active', source: 'scim' });
    const stored = await f.ctx.sql`select resource::text from scim_users where account_id = ${user.id}`;
    expect(stored[0]!.resource).not.toContain('generated-by-okta');

    const found = await f.client.get('/Users?filter=userName%20eq%20%22ISABELLA%40okta.test%22').expect(200);
    expect(found.body.totalResults).toBe(1);
    expect(found.body.Resources[0].id).toBe(user.id);

    // A list renders a user exactly as GET /Users/{id} does.
    expect(found.body.Resources[0]).toEqual((await f.client.get(`/Users/${user.id}`).expect(200)).body);

    const deactivated = await f.client
      .patch(`/Users/${user.id}`, [{ op: 'replace', value: { active: false } }])
      .expect(200);
    expect(deactivated.body.active).toBe(false);
    expect((await getMembership(f.ctx.sql, f.org.organization.id, user.id))!.status).toBe('suspended');
    // Inactive users are still found: Okta looks them up to reactivate them.
    const inactive = await f.client.get('/Users?filter=userName%20eq%20%22isabella%40okta.test%22').expect(200);
    expect(inactive.body.Resources[0].active).toBe(false);

    await f.client.patch(`/Users/${user.id}`, [{ op: 'replace', value: { active: true } }]).expect(200);
    expect((await getMembership(f.ctx.sql, f.org.organization.id, user.id))!.status).toBe('active');

    const replaced = await f.client
      .put(`/Users/${user.id}`, {
        ...(await import('../support/scim.ts')).oktaUser('isabella@okta.test'),
        name: { givenName: 'Bella', familyName: 'Tester' },
        title: 'CTO',
      })
      .expect(200);
    expect(replaced.body).toMatchObject({ name: { givenName: 'Bella' }, title: 'CTO', meta: { version: 'W/"4"' } });

    // Okta sends a password on PUT and PATCH too (e.g. "sync password"): never stored, never returned.
    const withPassword = await f.client
      .put(`/Users/${user.id}`, {
        ...(await import('../support/scim.ts')).oktaUser('isabella@okta.test'),
        title: 'CTO',
        password: 'put-password-2',
      })
      .expect(200);
    expect(withPassword.body.password).toBeUndefined();
    const patchedPassword = await f.client
      .patch(`/Users/${user.id}`, [{ op: 'replace', path: 'password', value: 'patch-password-3' }])
      .expect(200);
    expect(patchedPassword.body.password).toBeUndefined();
    const pathless = await f.client
      .patch(`/Users/${user.id}`, [{ op: 'replace', value: { password: 'patch-password-4', title: 'CEO' } }])
      .expect(200);
    expect(pathless.body).toMatchObject({ title: 'CEO' });
    expect(pathless.body.password).toBeUndefined();
    const row = (
      await f.ctx
        .sql`select resource::text as resource, resource ? 'password' as has from scim_users where account_id = ${user.id}`
    )[0]!;
    expect(row.has).toBe(false);
    expect(row.resource).not.toMatch(/password/i);
    const everywhere = await f.ctx
      .sql`select count(*)::int as n from audit_log where details::text like '%-password-%'`;
    expect(everywhere[0]!.n).toBe(0);

    const audit = await f.ctx
      .sql`select action, actor_name from audit_log where organization_id = ${f.org.organization.id} and channel = 'scim' order by id`;
    expect(audit.map((a) => a.action)).toEqual(
      expect.arrayContaining([
        'member.joined',
        'scim.user_created',
        'member.suspended',
        'member.reactivated',
        'scim.user_updated',
      ]),
    );
    expect(new Set(audit.map((a) => a.actorName))).toEqual(new Set(['idp']));
  });
});
