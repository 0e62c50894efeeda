import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemActor } from '../../src/core/actor.ts';
import { inviteMembers } from '../../src/core/invitations.ts';
import { getMembership } from '../../src/core/memberships.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { oktaUser, scimFixture } from '../support/scim.ts';

let f: Awaited<ReturnType<typeof scimFixture>>;
beforeAll(async () => {
  f = await scimFixture('scim-members');
});
afterAll(async () => f.ctx.database.close());

const orgId = () => f.org.organization.id;

describe('SCIM and organization membership', () => {
  it('a pending invitation is accepted when the invited person arrives through SCIM, with the invited role', async () => {
    const [result] = await inviteMembers(
      f.ctx.sql,
      f.ctx.config.serverSecret,
      orgId(),
      [{ email: 'invited@scim.test', roles: ['billing'] }],
      systemActor('admin'),
    );
    expect(result!.invited).toBe(true);
    const user = (await f.client.post('/Users', oktaUser('Invited@scim.test')).expect(201)).body;
    expect(await getMembership(f.ctx.sql, orgId(), user.id)).toMatchObject({ status: 'active', roles: ['billing'] });
    const [invitation] = await f.ctx
      .sql`select status from invitations where organization_id = ${orgId()} and account_id = ${user.id}`;
    expect(invitation!.status).toBe('accepted');
  });

  it('DELETE ends the membership, keeps the account, and a later create rejoins', async () => {
    const user = (await f.client.post('/Users', oktaUser('leaver@scim.test')).expect(201)).body;
    await f.client.delete(`/Users/${user.id}`).expect(204);
    expect((await getMembership(f.ctx.sql, orgId(), user.id))!.status).toBe('removed');
    expect((await f.ctx.sql`select 1 from accounts where id = ${user.id}`).length).toBe(1);
    await f.client.get(`/Users/${user.id}`).expect(404);
    const again = (await f.client.post('/Users', oktaUser('leaver@scim.test')).expect(201)).body;
    expect(again.id).toBe(user.id);
    expect((await getMembership(f.ctx.sql, orgId(), user.id))!.status).toBe('active');
  });

  it('deactivation ends the person’s sessions and they stop being able to use the admin API', async () => {
    const user = (await f.client.post('/Users', oktaUser('sessions@scim.test')).expect(201)).body;
    const { createSession } = await import('../../src/core/sessions.ts');
    const session = await createSession(f.ctx.sql, f.ctx.config.serverSecret, {
      organizationId: orgId(),
      accountId: user.id,
      via: 'saml',
    });
    await request(f.app).get('/api/organization').set('cookie', `orgsync_session=${session.secret}`).expect(200);
    await f.client.patch(`/Users/${user.id}`, [{ op: 'replace', path: 'active', value: false }]).expect(200);
    await request(f.app).get('/api/organization').set('cookie', `orgsync_session=${session.secret}`).expect(401);
  });

  it('SCIM group membership feeds group → role mappings', async () => {
    const user = (await f.client.post('/Users', oktaUser('mapped@scim.test')).expect(201)).body;
    const group = (await f.client.post('/Groups', { displayName: 'Billing Team' }).expect(201)).body;
    await request(f.app)
      .post('/api/group-mappings')
      .set('authorization', `Bearer ${f.org.adminKey}`)
      .send({ groupId: group.id, roles: ['billing'] })
      .expect(201);
    await f.client
      .patch(`/Groups/${group.id}`, [{ op: 'add', path: 'members', value: [{ value: user.id }] }])
      .expect(204);
    await createReconciler(f.ctx).events();
    expect((await getMembership(f.ctx.sql, orgId(), user.id))!.mappedRoles).toEqual(['billing']);
    await f.client.patch(`/Groups/${group.id}`, [{ op: 'remove', path: `members[value eq "${user.id}"]` }]).expect(204);
    await createReconciler(f.ctx).events();
    expect((await getMembership(f.ctx.sql, orgId(), user.id))!.mappedRoles).toEqual([]);
  });

  it('every change is in the outbox as a domain event', async () => {
    const types = (await f.ctx.sql`select distinct type from outbox where organization_id = ${orgId()}`).map(
      (r) => r.type,
    );
    expect(types).toEqual(
      expect.arrayContaining([
        'user.provisioned',
        'user.updated',
        'user.deprovisioned',
        'member.joined',
        'member.suspended',
        'member.removed',
        'group.created',
        'group.members_changed',
      ]),
    );
  });
});
