import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scimFixture, oktaUser } from '../support/scim.ts';

/**
 * A member the IdP provisioned through SCIM belongs to the IdP: the admin API refuses to remove,
 * or change the roles of, such a member unless the caller overrides the IdP, which is audited.
 */
let f: Awaited<ReturnType<typeof scimFixture>>;
let accountId: string;
const admin = () => ({ authorization: `Bearer ${f.org.adminKey}` });

beforeAll(async () => {
  f = await scimFixture('idp-managed');
  const created = await f.client.post('/Users', oktaUser('managed@idp.test')).expect(201);
  accountId = created.body.id;
});
afterAll(async () => f.ctx.database.close());

const membership = async () =>
  (
    await f.ctx.sql`select status, roles from memberships
      where organization_id = ${f.org.organization.id} and account_id = ${accountId}`
  )[0];
const audit = (action: string) =>
  f.ctx.sql`select details from audit_log where organization_id = ${f.org.organization.id} and action = ${action}
    and target_id = ${accountId} order by id`;

describe('members managed by the IdP (SCIM)', () => {
  it('are listed with their source', async () => {
    const list = await request(f.app).get('/api/members?limit=200').set(admin()).expect(200);
    expect(list.body.items.find((m: { accountId: string }) => m.accountId === accountId)).toMatchObject({
      source: 'scim',
    });
  });

  it('refuses a change of roles naming the IdP, and changes nothing', async () => {
    const before = await membership();
    const res = await request(f.app)
      .put(`/api/members/${accountId}/roles`)
      .set(admin())
      .send({ roles: ['admin'] })
      .expect(409);
    expect(res.body).toMatchObject({ error: 'rule_violation', details: { managedBy: 'scim' } });
    expect(res.body.message).toContain('identity provider');
    expect(await membership()).toEqual(before);
  });

  it('refuses removal (single and bulk) and changes nothing', async () => {
    const single = await request(f.app).delete(`/api/members/${accountId}`).set(admin()).expect(409);
    expect(single.body.message).toContain('identity provider');
    const bulk = await request(f.app)
      .post('/api/members/remove')
      .set(admin())
      .send({ accountIds: [accountId] })
      .expect(200);
    expect(bulk.body).toMatchObject({ removed: 0, failed: 1, results: [{ accountId, error: 'rule_violation' }] });
    expect((await membership())!.status).toBe('active');
    // SCIM still answers the user active, so the IdP's next push works.
    const user = await f.client.get(`/Users/${accountId}`).expect(200);
    expect(user.body.active).toBe(true);
  });

  it('with overrideIdp, changes roles and removes, each audited as an override', async () => {
    await request(f.app)
      .put(`/api/members/${accountId}/roles`)
      .set(admin())
      .send({ roles: ['admin'], overrideIdp: true })
      .expect(200);
    expect((await membership())!.roles).toEqual(['admin']);
    expect((await audit('member.role_changed')).at(-1)!.details).toMatchObject({ idpOverride: true });

    await request(f.app).delete(`/api/members/${accountId}?overrideIdp=true`).set(admin()).expect(204);
    expect((await membership())!.status).toBe('removed');
    expect((await audit('member.removed')).at(-1)!.details).toMatchObject({ idpOverride: true, to: 'removed' });
  });

  it('the IdP itself is never refused: SCIM deactivates and deletes its users', async () => {
    const other = await f.client.post('/Users', oktaUser('other@idp.test')).expect(201);
    await f.client.patch(`/Users/${other.body.id}`, [{ op: 'replace', value: { active: false } }]).expect(200);
    await f.client.delete(`/Users/${other.body.id}`).expect(204);
  });
});
