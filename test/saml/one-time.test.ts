import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumeRequest, markAssertionUsed, rememberRequest } from '../../src/saml/one-time.ts';
import { samlFixture, type SamlFixture } from './support/setup.ts';

let f: SamlFixture;
beforeAll(async () => {
  f = await samlFixture();
});
afterAll(async () => f.ctx.database.close());

const inAMinute = () => new Date(Date.now() + 60_000);
/** Row ids, in order, each marked when its expiry has passed. */
const labelled = (rows: { id: string; expired: boolean }[]) =>
  rows.map((row) => `${row.id}${row.expired ? ' (expired)' : ''}`);
const rowsOf = async () =>
  labelled(
    await f.ctx.sql`select assertion_id as id, expires_at < now() as expired from saml_replay_cache
                    where organization_id = ${f.organization.id} order by assertion_id`,
  );
const addExpired = (assertionId: string) =>
  f.ctx.sql`insert into saml_replay_cache (organization_id, assertion_id, expires_at)
          values (${f.organization.id}, ${assertionId}, now() - interval '1 minute')`;

describe('the replay cache', () => {
  it("prunes the organization's expired ids with its first use in a process, and not again within a minute", async () => {
    await addExpired('_old-1');
    await addExpired('_old-2');
    expect(await markAssertionUsed(f.ctx.sql, f.organization.id, '_first', inAMinute())).toBe(true);
    expect(await rowsOf()).toEqual(['_first']);

    await addExpired('_old-3');
    expect(await markAssertionUsed(f.ctx.sql, f.organization.id, '_second', inAMinute())).toBe(true);
    expect(await rowsOf()).toEqual(['_first', '_old-3 (expired)', '_second']);
  });

  it('refuses an id in use, and takes over one whose row has expired though it is still there', async () => {
    expect(await markAssertionUsed(f.ctx.sql, f.organization.id, '_first', inAMinute())).toBe(false);
    expect(await markAssertionUsed(f.ctx.sql, f.organization.id, '_old-3', inAMinute())).toBe(true);
    expect(await rowsOf()).toEqual(['_first', '_old-3', '_second']);
    expect(await markAssertionUsed(f.ctx.sql, f.organization.id, '_old-3', inAMinute())).toBe(false);
  });

  it('lets only one of concurrent uses of an id through', async () => {
    const uses = await Promise.all(
      Array.from({ length: 8 }, () => markAssertionUsed(f.ctx.sql, f.organization.id, '_raced', inAMinute())),
    );
    expect(uses.filter(Boolean)).toHaveLength(1);
  });
});

describe('the AuthnRequests sent', () => {
  const requestsOf = async () =>
    labelled(
      await f.ctx.sql`select id, expires_at < now() as expired from saml_requests
                      where organization_id = ${f.organization.id} order by id`,
    );
  const addExpiredRequest = (id: string) =>
    f.ctx
      .sql`insert into saml_requests (organization_id, id, connection_id, return_to, browser_binding_hash, expires_at)
            values (${f.organization.id}, ${id}, ${f.connectionId}, '/', 'hash', now() - interval '1 minute')`;
  const send = (id: string) =>
    rememberRequest(f.ctx.sql, {
      organizationId: f.organization.id,
      id,
      connectionId: f.connectionId,
      returnTo: '/',
      browserBindingHash: 'hash',
      invitationId: null,
    });

  it("prunes the organization's expired requests with its first login start in a process, and not again within a minute", async () => {
    await addExpiredRequest('_req-old-1');
    await send('_req-1');
    expect(await requestsOf()).toEqual(['_req-1']);

    await addExpiredRequest('_req-old-2');
    await send('_req-2');
    expect(await requestsOf()).toEqual(['_req-1', '_req-2', '_req-old-2 (expired)']);
  });

  it('answers a request once, and an expired one never', async () => {
    expect(await consumeRequest(f.ctx.sql, f.organization.id, f.connectionId, '_req-1')).toEqual({
      returnTo: '/',
      browserBindingHash: 'hash',
      invitationId: null,
    });
    expect(await consumeRequest(f.ctx.sql, f.organization.id, f.connectionId, '_req-1')).toBeNull();
    expect(await consumeRequest(f.ctx.sql, f.organization.id, f.connectionId, '_req-old-2')).toBeNull();
  });
});
