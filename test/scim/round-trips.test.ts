import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../../src/storage/database.ts';
import { connect } from '../../src/storage/database.ts';
import { createApp } from '../../src/app.ts';
import { oktaUser, scimClient, scimFixture } from '../support/scim.ts';

/**
 * Each SCIM write reaches PostgreSQL as one statement (one round trip, its own transaction),
 * audit entry and event included; a replace reads first. Counted on a pool that reports every
 * statement it sends, leaving out the token's verification and the batched request log.
 */
describe('SCIM write round trips', () => {
  let f: Awaited<ReturnType<typeof scimFixture>>;
  let counted: Sql;
  let client: ReturnType<typeof scimClient>;
  let sent: string[] = [];

  beforeAll(async () => {
    f = await scimFixture('round-trips');
    counted = connect((f.ctx.database as unknown as { url: string }).url, 2, {
      onQuery: (query) => {
        // Not the write's: verifying the token (remembered for a second), its rate-limit bucket
        // (shared by every instance: a statement of its own per request), the batched request
        // log, and the client's once-per-connection read of PostgreSQL's array types.
        if (!/scim_requests|scim_rate_buckets|from credentials|update credentials|pg_catalog/.test(query))
          sent.push(query);
      },
    });
    client = scimClient(createApp({ ...f.ctx, sql: counted }), f.org.scimToken);
    await client.get('/Users?count=1').expect(200); // the token is verified once, then remembered
  });
  afterAll(async () => {
    await counted.end();
    await f.ctx.database.close();
  });

  const statementsOf = async (request: () => Promise<unknown>) => {
    sent = [];
    await request();
    if (process.env.SHOW_STATEMENTS) console.log(sent.map((q) => q.replace(/\s+/g, ' ').slice(0, 160)));
    return sent.length;
  };
  const auditOf = async (accountId: string) =>
    (
      await f.ctx.sql<{ action: string }[]>`
        select action from audit_log where target_id = ${accountId} order by id`
    ).map((r) => r.action);

  it('create, deactivate, reactivate and delete: one statement each, audited and announced as before', async () => {
    let id = '';
    expect(
      await statementsOf(async () => {
        id = (await client.post('/Users', oktaUser('one@round-trips.test')).expect(201)).body.id;
      }),
    ).toBe(1);
    expect(await auditOf(id)).toEqual(expect.arrayContaining(['member.joined', 'scim.user_created']));

    expect(
      await statementsOf(() => client.patch(`/Users/${id}`, [{ op: 'replace', value: { active: false } }]).expect(200)),
    ).toBe(1);
    expect(
      await statementsOf(() =>
        client.patch(`/Users/${id}`, [{ op: 'Replace', path: 'active', value: 'True' }]).expect(200),
      ),
    ).toBe(1);
    const membership = await f.ctx.sql`select status from memberships where account_id = ${id}`;
    expect(membership[0]!.status).toBe('active');

    expect(await statementsOf(() => client.delete(`/Users/${id}`).expect(204))).toBe(1);
    expect(await auditOf(id)).toEqual(
      expect.arrayContaining([
        'member.suspended',
        'member.reactivated',
        'scim.user_updated',
        'member.removed',
        'scim.user_deleted',
      ]),
    );
    const events = await f.ctx.sql<{ type: string }[]>`
      select type from outbox where payload->>'accountId' = ${id} order by id`;
    expect(events.map((e) => e.type)).toEqual(
      expect.arrayContaining([
        'user.provisioned',
        'member.joined',
        'member.suspended',
        'member.reactivated',
        'user.updated',
        'member.removed',
        'user.deprovisioned',
      ]),
    );
  });

  it('a replace or a general PATCH reads once and writes once', async () => {
    const id = (await client.post('/Users', oktaUser('two@round-trips.test')).expect(201)).body.id;
    expect(
      await statementsOf(() =>
        client.put(`/Users/${id}`, { ...oktaUser('two@round-trips.test'), title: 'CTO' }).expect(200),
      ),
    ).toBe(2);
    expect(
      await statementsOf(() =>
        client.patch(`/Users/${id}`, [{ op: 'replace', path: 'title', value: 'CEO' }]).expect(200),
      ),
    ).toBe(2);
  });

  it('adding a member to a group is one statement', async () => {
    const user = (await client.post('/Users', oktaUser('three@round-trips.test')).expect(201)).body.id;
    const group = (
      await client
        .post('/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'rt', members: [] })
        .expect(201)
    ).body.id;
    expect(
      await statementsOf(() =>
        client.patch(`/Groups/${group}`, [{ op: 'add', path: 'members', value: [{ value: user }] }]).expect(204),
      ),
    ).toBe(1);
    const audit = await f.ctx
      .sql`select details from audit_log where target_id = ${group} and action = 'group.members_changed'`;
    expect(audit.map((a) => a.details)).toEqual([{ added: [user], removed: [] }]);
  });
});
