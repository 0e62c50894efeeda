import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemActor } from '../../src/core/actor.ts';
import { issueCredential } from '../../src/core/credentials.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { BUILT_IN_ROLES } from '../../src/core/roles.ts';
import { TEST_SERVER_SECRET, createTestOrganization } from '../support/context.ts';
import { oktaUser, scimClient, scimFixture } from '../support/scim.ts';

let f: Awaited<ReturnType<typeof scimFixture>>;
beforeAll(async () => {
  f = await scimFixture('tokens-org');
});
afterAll(async () => f.ctx.database.close());

const admin = () => ({ authorization: `Bearer ${f.org.adminKey}` });

/** The token's request log once it holds `count` entries (it is written in batches off the request path). */
async function loggedRequests<T>(tokenId: string, count: number): Promise<T[]> {
  let items: T[] = [];
  await expect
    .poll(async () => {
      items = (await request(f.app).get(`/api/scim-tokens/${tokenId}/requests`).set(admin()).expect(200)).body.items;
      return items.length;
    })
    .toBe(count);
  return items;
}

describe('SCIM tokens through the admin API', () => {
  it('issues named tokens, shown once and stored hashed; several work at once', async () => {
    const issued = await request(f.app)
      .post('/api/scim-tokens')
      .set(admin())
      .send({ name: 'entra', expiresInDays: 30 })
      .expect(201);
    expect(issued.body.scimBaseUrl).toBe('https://orgsync.test/scim/v2');
    expect(issued.body.token).toMatchObject({ name: 'entra', kind: 'scim' });
    expect(new Date(issued.body.token.expiresAt).getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    const stored = await f.ctx.sql`select secret_hash from credentials where id = ${issued.body.token.id}`;
    expect(stored[0]!.secretHash).not.toContain(issued.body.secret);

    await scimClient(f.app, issued.body.secret).get('/Users').expect(200);
    await f.client.get('/Users').expect(200);
    const listed = await request(f.app).get('/api/scim-tokens').set(admin()).expect(200);
    expect(listed.body.tokens.map((t: { name: string }) => t.name).sort()).toEqual(['entra', 'idp']);
    expect(JSON.stringify(listed.body)).not.toContain(issued.body.secret);
    expect(listed.body.tokens.find((t: { name: string }) => t.name === 'entra').lastUsedAt).toBeTruthy();
  });

  it('only a caller holding every permission issues or rotates one: a SCIM token can suspend and delete owners', async () => {
    const adminKey = await issueCredential(
      f.ctx.sql,
      TEST_SERVER_SECRET,
      { organizationId: f.org.organization.id, kind: 'admin', name: 'an admin', roles: ['admin'] },
      systemActor('cli'),
    );
    const asAdmin = { authorization: `Bearer ${adminKey.secret}` };
    const before = await f.ctx.sql`select count(*)::int as n from credentials where kind = 'scim'`;
    const refused = await request(f.app).post('/api/scim-tokens').set(asAdmin).send({ name: 'my own idp' }).expect(403);
    expect(refused.body.details.missing).toEqual(['billing:manage']);
    expect(refused.body.message).toContain('issue a SCIM token');
    const existing = (await request(f.app).get('/api/scim-tokens').set(asAdmin).expect(200)).body.tokens[0];
    await request(f.app)
      .post(`/api/scim-tokens/${existing.id}/rotate`)
      .set(asAdmin)
      .send({ overlapHours: 1 })
      .expect(403);
    // Nothing changed: no new token, and the rotation's shortened expiry was rolled back.
    expect(await f.ctx.sql`select count(*)::int as n from credentials where kind = 'scim'`).toEqual(before);
    expect((await f.ctx.sql`select expires_at from credentials where id = ${existing.id}`)[0]!.expiresAt).toEqual(
      existing.expiresAt ? new Date(existing.expiresAt) : null,
    );
    // Nor can it issue an admin key above itself through the core.
    await expect(
      issueCredential(
        f.ctx.sql,
        TEST_SERVER_SECRET,
        { organizationId: f.org.organization.id, kind: 'admin', name: 'owner key', roles: ['owner'] },
        {
          type: 'admin_key',
          id: adminKey.id,
          name: 'an admin',
          channel: 'admin',
          permissions: [...BUILT_IN_ROLES.admin!.permissions],
        },
      ),
    ).rejects.toMatchObject({ code: 'forbidden', details: { missing: ['billing:manage'] } });
  });

  it('rotates with an overlap: both secrets work until the old one expires; revoke stops a token at once', async () => {
    const first = (await request(f.app).post('/api/scim-tokens').set(admin()).send({ name: 'okta' }).expect(201)).body;
    const rotated = (
      await request(f.app)
        .post(`/api/scim-tokens/${first.token.id}/rotate`)
        .set(admin())
        .send({ overlapHours: 1 })
        .expect(201)
    ).body;
    expect(rotated.token.name).toBe('okta');
    expect(new Date(rotated.previous.expiresAt).getTime()).toBeLessThanOrEqual(Date.now() + 3_600_000);
    await scimClient(f.app, first.secret).get('/Users').expect(200);
    await scimClient(f.app, rotated.secret).get('/Users').expect(200);

    // Overlap 0: the old secret stops now.
    const again = (
      await request(f.app)
        .post(`/api/scim-tokens/${rotated.token.id}/rotate`)
        .set(admin())
        .send({ overlapHours: 0 })
        .expect(201)
    ).body;
    await scimClient(f.app, rotated.secret).get('/Users').expect(401);
    await scimClient(f.app, again.secret).get('/Users').expect(200);

    await request(f.app).delete(`/api/scim-tokens/${again.token.id}`).set(admin()).expect(200);
    await scimClient(f.app, again.secret).get('/Users').expect(401);
  });

  it('records every SCIM request per token with its resource', async () => {
    const token = (await request(f.app).post('/api/scim-tokens').set(admin()).send({ name: 'audited' }).expect(201))
      .body;
    const client = scimClient(f.app, token.secret);
    const user = (await client.post('/Users', oktaUser('logged@tokens.test')).expect(201)).body;
    await client.patch(`/Users/${user.id}`, [{ op: 'replace', value: { active: false } }]).expect(200);
    await client.get('/Users/00000000-0000-4000-8000-000000000000').expect(404);

    const items = await loggedRequests<{
      method: string;
      status: number;
      resourceId: string | null;
      path: string;
      durationMs: number;
    }>(token.token.id, 3);
    expect(items.map((e) => [e.method, e.status])).toEqual([
      ['GET', 404],
      ['PATCH', 200],
      ['POST', 201],
    ]);
    expect(items[1]!.resourceId).toBe(user.id);
    expect(items[2]!.path).toBe('/scim/v2/Users');
    expect(items[2]!.durationMs).toBeGreaterThan(0);
  });

  it('records a malformed body sent with a good token (400 invalidSyntax); a bad token with one gets 401', async () => {
    const token = (await request(f.app).post('/api/scim-tokens').set(admin()).send({ name: 'malformed' }).expect(201))
      .body;
    const bad = await scimClient(f.app, token.secret).raw('post', '/Users', '{"userName": ').expect(400);
    expect(bad.body).toMatchObject({ status: '400', scimType: 'invalidSyntax' });
    await scimClient(f.app, 'not-a-token').raw('patch', '/Users/x', '{"Operations": ').expect(401);

    const items = await loggedRequests<{ method: string; status: number; path: string }>(token.token.id, 1);
    expect(items.map((e) => [e.method, e.path, e.status])).toEqual([['POST', '/scim/v2/Users', 400]]);
  });

  it('a token whose expiry has passed gets 401', async () => {
    const issued = (
      await request(f.app)
        .post('/api/scim-tokens')
        .set(admin())
        .send({ name: 'expiring', expiresInDays: 1 })
        .expect(201)
    ).body;
    await f.ctx.sql`update credentials set expires_at = now() - interval '1 minute' where id = ${issued.token.id}`;
    const res = await scimClient(f.app, issued.secret).get('/Users').expect(401);
    expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '401' });
    const listed = (await request(f.app).get('/api/scim-tokens').set(admin()).expect(200)).body.tokens;
    expect(new Date(listed.find((t: { id: string }) => t.id === issued.token.id).expiresAt).getTime()).toBeLessThan(
      Date.now(),
    );
  });

  it('keeps the request log for 30 days: housekeeping prunes older entries', async () => {
    const [token] = await f.ctx
      .sql`select id from credentials where organization_id = ${f.org.organization.id} and kind = 'scim' limit 1`;
    await f.ctx.sql`insert into scim_requests (organization_id, credential_id, at, method, path, status, duration_ms)
                    values (${f.org.organization.id}, ${token!.id}, now() - interval '31 days', 'GET', '/old', 200, 1),
                           (${f.org.organization.id}, ${token!.id}, now() - interval '29 days', 'GET', '/recent', 200, 1)`;
    const counts = await createReconciler(f.ctx).housekeeping();
    expect(counts.scimRequestsPruned).toBe(1);
    const paths = (await f.ctx.sql`select path from scim_requests where path in ('/old', '/recent')`).map(
      (r) => r.path,
    );
    expect(paths).toEqual(['/recent']);
  });

  it("another organization's admin key cannot see or touch these tokens", async () => {
    const other = await createTestOrganization(f.ctx, 'tokens-other');
    const mine = (await request(f.app).get('/api/scim-tokens').set(admin()).expect(200)).body.tokens[0];
    const theirs = { authorization: `Bearer ${other.adminKey}` };
    expect(
      (await request(f.app).get('/api/scim-tokens').set(theirs).expect(200)).body.tokens.map(
        (t: { id: string }) => t.id,
      ),
    ).not.toContain(mine.id);
    await request(f.app).delete(`/api/scim-tokens/${mine.id}`).set(theirs).expect(404);
    await request(f.app).post(`/api/scim-tokens/${mine.id}/rotate`).set(theirs).send({}).expect(404);
    await request(f.app).get(`/api/scim-tokens/${mine.id}/requests`).set(theirs).expect(404);
  });
});
