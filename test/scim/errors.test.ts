import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import express, { type ErrorRequestHandler } from 'express';
import request from 'supertest';
import { systemActor } from '../../src/core/actor.ts';
import { listCredentials, revokeCredential } from '../../src/core/credentials.ts';
import { DomainError, type DomainErrorCode } from '../../src/core/errors.ts';
import {
  CONFLICT_LOST_MESSAGE,
  RETRY_AFTER_SECONDS,
  retryAfterOnUnavailable,
  sendUnavailable,
  UNAVAILABLE_MESSAGE,
} from '../../src/http/errors.ts';
import { toScimError } from '../../src/scim/errors.ts';
import { oktaUser, scimFixture } from '../support/scim.ts';

let f: Awaited<ReturnType<typeof scimFixture>>;
beforeAll(async () => {
  f = await scimFixture('errors-org', { SCIM_RATE_LIMIT: '1', SCIM_RATE_BURST: '1000' });
});
afterAll(async () => f.ctx.database.close());

const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const count = async () => Number((await f.ctx.sql`select count(*)::int as n from scim_users`)[0]!.n);

describe('RFC 7644 error responses', () => {
  it('missing, wrong and revoked tokens get 401 with a SCIM error', async () => {
    const none = await request(f.app).get('/scim/v2/Users').expect(401);
    expect(none.body).toMatchObject({ schemas: [ERROR], status: '401' });
    expect(none.headers['content-type']).toContain('application/scim+json');
    await request(f.app).get('/scim/v2/Users').set('authorization', 'Bearer nope').expect(401);
    await request(f.app).get('/scim/v2/Users').set('authorization', `Basic ${f.org.scimToken}`).expect(401);
    await request(f.app).get('/scim/v2/Users').set('authorization', `Bearer ${f.org.scimToken}`).expect(200);
    const [token] = await listCredentials(f.ctx.sql, f.org.organization.id, 'scim');
    await revokeCredential(f.ctx.sql, f.org.organization.id, token!.id, systemActor('admin'));
    await request(f.app).get('/scim/v2/Users').set('authorization', `Bearer ${f.org.scimToken}`).expect(401);
    await f.ctx
      .sql`update credentials set revoked_at = null where organization_id = ${f.org.organization.id} and kind = 'scim'`;
  });

  it('the token is checked before the body is read: a bad token with a malformed body gets 401', async () => {
    for (const authorization of ['Bearer nope', undefined]) {
      const req = request(f.app).post('/scim/v2/Users').set('content-type', 'application/scim+json');
      if (authorization) req.set('authorization', authorization);
      const res = await req.send('{"userName": "broken@x.test",').expect(401);
      expect(res.body).toMatchObject({ schemas: [ERROR], status: '401' });
      expect(res.body.scimType).toBeUndefined();
    }
  });

  it('malformed JSON → 400 invalidSyntax, and nothing is written', async () => {
    const res = await f.client.raw('post', '/Users', '{"userName": "broken@x.test",').expect(400);
    expect(res.body).toMatchObject({ schemas: [ERROR], status: '400', scimType: 'invalidSyntax' });
    const patch = await f.client
      .raw('patch', '/Users/00000000-0000-4000-8000-000000000000', '{"Operations": ')
      .expect(400);
    expect(patch.body.scimType).toBe('invalidSyntax');
    expect(await count()).toBe(0);
  });

  it('bad filters → 400 invalidFilter', async () => {
    for (const filter of [
      'userName eq',
      'userName foo "x"',
      'nope eq "x"',
      '(userName eq "x"',
      'meta.lastModified gt "yesterday"',
      'active gt true',
    ]) {
      const res = await f.client.get(`/Users?filter=${encodeURIComponent(filter)}`).expect(400);
      expect(res.body, filter).toMatchObject({ status: '400', scimType: 'invalidFilter' });
    }
  });

  it('unknown ids → 404 on every verb', async () => {
    const id = '00000000-0000-4000-8000-000000000001';
    await f.client.get(`/Users/${id}`).expect(404);
    await f.client.put(`/Users/${id}`, oktaUser('ghost@x.test')).expect(404);
    await f.client.patch(`/Users/${id}`, [{ op: 'replace', value: { active: false } }]).expect(404);
    await f.client.delete(`/Users/${id}`).expect(404);
    await f.client.get(`/Groups/${id}`).expect(404);
    await f.client.patch(`/Groups/${id}`, [{ op: 'add', path: 'members', value: [] }]).expect(404);
    await f.client.delete(`/Groups/${id}`).expect(404);
  });

  it('duplicates → 409 uniqueness (userName case-insensitively, and group names)', async () => {
    await f.client.post('/Users', oktaUser('dup@x.test')).expect(201);
    const again = await f.client.post('/Users', { ...oktaUser('dup@x.test'), userName: 'DUP@x.test' }).expect(409);
    expect(again.body).toMatchObject({ status: '409', scimType: 'uniqueness' });
    // Same person (email) under another userName.
    const samePerson = await f.client.post('/Users', { ...oktaUser('dup@x.test'), userName: 'other-name' }).expect(409);
    expect(samePerson.body.scimType).toBe('uniqueness');
    await f.client.post('/Groups', { displayName: 'Dups' }).expect(201);
    expect((await f.client.post('/Groups', { displayName: 'dups' }).expect(409)).body.scimType).toBe('uniqueness');
  });

  it('wrong content → 400 invalidValue, and a failed request changes nothing', async () => {
    const before = await count();
    expect((await f.client.post('/Users', { userName: 42 }).expect(400)).body.scimType).toBe('invalidValue');
    expect((await f.client.post('/Users', { name: { givenName: 'No userName' } }).expect(400)).body.scimType).toBe(
      'invalidValue',
    );
    expect((await f.client.post('/Users', { userName: 'not-an-email', emails: [] }).expect(400)).body.scimType).toBe(
      'invalidValue',
    );
    expect((await f.client.post('/Users', { userName: 'x@x.test', active: 'maybe' }).expect(400)).body.scimType).toBe(
      'invalidValue',
    );
    expect(await count()).toBe(before);

    const user = (await f.client.post('/Users', oktaUser('valid@x.test')).expect(201)).body;
    const bad = await f.client.patch(`/Users/${user.id}`, [
      { op: 'replace', path: 'title', value: 'Changed' },
      { op: 'replace', path: 'active', value: 'sometimes' },
    ]);
    expect(bad.status).toBe(400);
    expect(bad.body.scimType).toBe('invalidValue');
    expect((await f.client.get(`/Users/${user.id}`).expect(200)).body.title).toBeUndefined();
    expect((await f.client.patch(`/Users/${user.id}`, [{ op: 'jump', path: 'title' }]).expect(400)).body.scimType).toBe(
      'invalidSyntax',
    );
    expect((await f.client.patch(`/Users/${user.id}`, [{ op: 'remove' }]).expect(400)).body.scimType).toBe('noTarget');
    expect(
      (await f.client.patch(`/Users/${user.id}`, [{ op: 'replace', path: 'emails[type eq', value: 'x' }]).expect(400))
        .body.scimType,
    ).toBe('invalidPath');
    expect(
      (await f.client.patch(`/Users/${user.id}`, [{ op: 'replace', path: 'id', value: 'x' }]).expect(400)).body
        .scimType,
    ).toBe('mutability');

    // A group member who is not in the organization.
    const group = (await f.client.post('/Groups', { displayName: 'Strict' }).expect(201)).body;
    const stranger = await f.client.patch(`/Groups/${group.id}`, [
      { op: 'add', path: 'members', value: [{ value: '00000000-0000-4000-8000-000000000009' }] },
    ]);
    expect(stranger.status).toBe(400);
    expect(stranger.body.scimType).toBe('invalidValue');
  });

  it('group members that are not UUIDs or not in the organization: 400 invalidValue naming them on add, replace and PUT; removing them is a no-op', async () => {
    const [a, b] = (await Promise.all(
      ['m-a@x.test', 'm-b@x.test'].map(
        async (e) => (await f.client.post('/Users', oktaUser(e)).expect(201)).body.id as string,
      ),
    )) as [string, string];
    const group = (await f.client.post('/Groups', { displayName: 'Member ids', members: [{ value: a }] }).expect(201))
      .body;
    const stranger = '00000000-0000-4000-8000-00000000beef';
    const members = async () =>
      ((await f.client.get(`/Groups/${group.id}`).expect(200)).body.members ?? []).map(
        (m: { value: string }) => m.value,
      );
    const audited = async () =>
      Number((await f.ctx.sql`select count(*)::int as n from audit_log where target_id = ${group.id}`)[0]!.n);
    const auditBefore = await audited();

    // Refused as a whole, naming every offender; the rename in the same request is not applied.
    const refusals = [
      () => f.client.patch(`/Groups/${group.id}`, [{ op: 'replace', path: 'members', value: [{ value: 'abc' }] }]),
      () =>
        f.client.patch(`/Groups/${group.id}`, [
          { op: 'replace', path: 'displayName', value: 'Renamed' },
          { op: 'replace', path: 'members', value: [{ value: b }, { value: 'abc' }, { value: stranger }] },
        ]),
      () => f.client.patch(`/Groups/${group.id}`, [{ op: 'replace', value: { members: [{ value: 'abc' }] } }]),
      () =>
        f.client.patch(`/Groups/${group.id}`, [
          { op: 'add', path: 'members', value: [{ value: 'abc' }, { value: stranger }] },
        ]),
      () => f.client.put(`/Groups/${group.id}`, { displayName: 'G', members: [{ value: 'abc' }] }),
      () => f.client.put(`/Groups/${group.id}`, { displayName: 'G', members: [{ value: b }, { value: stranger }] }),
    ];
    for (const [i, send] of refusals.entries()) {
      const res = await send();
      expect(res.status, `request ${i}`).toBe(400);
      expect(res.body, `request ${i}`).toMatchObject({ schemas: [ERROR], status: '400', scimType: 'invalidValue' });
      expect(res.body.detail).toMatch(
        i === 0 || i === 2 || i === 4 ? /abc/ : i === 5 ? new RegExp(stranger) : /abc.*beef/,
      );
    }
    const after = (await f.client.get(`/Groups/${group.id}`).expect(200)).body;
    expect(after.displayName).toBe('Member ids');
    expect(after.members.map((m: { value: string }) => m.value)).toEqual([a]);
    expect(await audited()).toBe(auditBefore);

    // Removing someone who is not there, whatever the id looks like, changes nothing.
    await f.client.patch(`/Groups/${group.id}`, [{ op: 'remove', path: 'members[value eq "nope"]' }]).expect(204);
    await f.client
      .patch(`/Groups/${group.id}`, [{ op: 'remove', path: `members[value eq "${stranger}"]` }])
      .expect(204);
    await f.client
      .patch(`/Groups/${group.id}`, [{ op: 'remove', path: 'members', value: [{ value: 'abc' }, { value: b }] }])
      .expect(204);
    expect(await members()).toEqual([a]);
    expect(await audited()).toBe(auditBefore);
    // Not a no-op on a group that does not exist.
    await f.client.patch(`/Groups/${stranger}`, [{ op: 'remove', path: 'members[value eq "nope"]' }]).expect(404);

    // The same ids valid: a PUT and a replace work (upper-case UUIDs too).
    await f.client
      .put(`/Groups/${group.id}`, { displayName: 'Member ids', members: [{ value: b.toUpperCase() }] })
      .expect(200);
    expect(await members()).toEqual([b]);
    await f.client
      .patch(`/Groups/${group.id}`, [{ op: 'replace', path: 'members', value: [{ value: a }, { value: b }] }])
      .expect(204);
    expect((await members()).sort()).toEqual([a, b].sort());
  });

  it('an internal error in a route scimmy serves is answered once, logged once, and the connection kept', async () => {
    const group = (await f.client.post('/Groups', { displayName: 'Broken' }).expect(201)).body;
    const server = http.createServer(f.app).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    let connections = 0;
    server.on('connection', () => connections++);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.get(
          {
            host: '127.0.0.1',
            port: (server.address() as AddressInfo).port,
            path: `/scim/v2${path}`,
            agent,
            headers: { authorization: `Bearer ${f.org.scimToken}` },
          },
          (res) => {
            let body = '';
            res.on('data', (chunk) => (body += chunk));
            res.on('end', () => resolve({ status: res.statusCode!, body }));
          },
        );
        req.on('error', reject);
      });
    const logged = vi.spyOn(f.ctx.log, 'error');
    await f.ctx.sql`alter table group_members rename to group_members_away`;
    try {
      const failed = await get(`/Groups/${group.id}`);
      expect(failed.status).toBe(500);
      expect(JSON.parse(failed.body)).toMatchObject({ schemas: [ERROR], status: '500', detail: 'internal error' });
    } finally {
      await f.ctx.sql`alter table group_members_away rename to group_members`;
    }
    try {
      expect((await get(`/Groups/${group.id}`)).status).toBe(200);
      // The failed response did not end in ERR_HTTP_HEADERS_SENT (which drops the connection).
      expect(connections).toBe(1);
      expect(logged).toHaveBeenCalledTimes(1);
      expect(logged.mock.calls[0]![1]).toBe('SCIM request failed');
    } finally {
      logged.mockRestore();
      agent.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  // Ending the session needs a real PostgreSQL: the embedded one has a single session.
  it.skipIf(!process.env.DATABASE_URL)(
    'losing the database in a route scimmy serves answers 503 with Retry-After, as orgsync’s own routes do',
    async () => {
      const { id } = (await f.client.post('/Users', oktaUser('lost@x.test')).expect(201)).body;
      const before = (await f.client.get(`/Users/${id}`).expect(200)).body;
      const logged = vi.spyOn(f.ctx.log, 'error');
      // Each statement that reads the users ends its own session: the server answers 57P01
      // (admin_shutdown), as when a failover or an operator ends it. Token and rate limit still work.
      await f.ctx.sql`alter table scim_users rename to scim_users_away`;
      await f.ctx
        .sql`create view scim_users as select * from scim_users_away where pg_terminate_backend(pg_backend_pid())`;
      try {
        const attempts = [
          // Served by scimmy-routers (GET one, PUT, DELETE), then by orgsync's own routes (list, PATCH).
          f.client.get(`/Users/${id}`),
          f.client.put(`/Users/${id}`, oktaUser('lost@x.test', { title: 'Lost' })),
          f.client.delete(`/Users/${id}`),
          f.client.get('/Users'),
          f.client.patch(`/Users/${id}`, [{ op: 'replace', path: 'title', value: 'Lost' }]),
        ];
        for (const attempt of attempts) {
          const res = await attempt;
          expect(res.status).toBe(503);
          expect(res.headers['retry-after']).toBe(String(RETRY_AFTER_SECONDS));
          expect(res.headers['content-type']).toContain('application/scim+json');
          expect(res.body).toEqual({ schemas: [ERROR], status: '503', detail: UNAVAILABLE_MESSAGE });
        }
        expect(logged).not.toHaveBeenCalled();
      } finally {
        logged.mockRestore();
        await f.ctx.sql`drop view scim_users`;
        await f.ctx.sql`alter table scim_users_away rename to scim_users`;
      }
      expect((await f.client.get(`/Users/${id}`).expect(200)).body).toEqual(before);
    },
  );

  it('every domain error has its SCIM status and scimType; none is an internal error', () => {
    const expected: Record<DomainErrorCode, [number, string | null]> = {
      not_found: [404, null],
      conflict: [409, 'uniqueness'],
      invalid: [400, 'invalidValue'],
      forbidden: [403, null],
      rule_violation: [409, null],
      unavailable: [503, null],
      precondition_failed: [412, null],
      bad_gateway: [502, null],
    };
    const logged: unknown[] = [];
    for (const [code, [status, scimType]] of Object.entries(expected)) {
      const error = toScimError(new DomainError(code as DomainErrorCode, `a ${code} error`), (e) => logged.push(e));
      expect({ status: error.status, scimType: error.scimType ?? null, message: error.message }, code).toEqual({
        status,
        scimType,
        message: `a ${code} error`,
      });
    }
    expect(logged).toEqual([]);
  });

  it('a write rolled back to settle a deadlock or a serialization conflict → 503, logged', () => {
    for (const code of ['40P01', '40001']) {
      const logged: unknown[] = [];
      const lost = Object.assign(new Error('deadlock detected'), { code });
      const error = toScimError(lost, (e) => logged.push(e));
      expect({ status: error.status, scimType: error.scimType ?? null, message: error.message }).toEqual({
        status: 503,
        scimType: null,
        message: CONFLICT_LOST_MESSAGE,
      });
      expect(logged).toEqual([lost]);
    }
  });

  it('the admin API answers such a write 503 with Retry-After in its own shape, logged', async () => {
    const app = express();
    app.use(retryAfterOnUnavailable);
    app.post('/members', () => {
      throw Object.assign(new Error('deadlock detected'), { code: '40P01' });
    });
    const logged: unknown[] = [];
    app.use(((error, _req, res, next) => {
      if (!sendUnavailable(res, error, (e) => logged.push(e))) next(error);
    }) as ErrorRequestHandler);
    const res = await request(app).post('/members').expect(503);
    expect(res.headers['retry-after']).toBe(String(RETRY_AFTER_SECONDS));
    expect(res.body).toEqual({ error: 'unavailable', message: CONFLICT_LOST_MESSAGE });
    expect(logged).toHaveLength(1);
  });

  it('unknown endpoints and a malformed Bulk answer SCIM errors', async () => {
    expect((await f.client.get('/Nope').expect(404)).body.schemas).toEqual([ERROR]);
    expect((await f.client.post('/Bulk', { Operations: [] }).expect(400)).body).toMatchObject({
      schemas: [ERROR],
      scimType: 'invalidSyntax',
    });
  });

  it('too many requests on one token → 429 with Retry-After', async () => {
    await f.ctx.sql`select 1`;
    const limited = await scimFixture('errors-rate', { SCIM_RATE_LIMIT: '0.5', SCIM_RATE_BURST: '3' });
    try {
      for (let i = 0; i < 3; i++) await limited.client.get('/Users').expect(200);
      const res = await limited.client.get('/Users').expect(429);
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(res.body).toMatchObject({ schemas: [ERROR], status: '429' });
    } finally {
      await limited.ctx.database.close();
    }
  });
});
