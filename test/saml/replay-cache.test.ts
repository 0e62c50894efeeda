import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { systemActor } from '../../src/core/actor.ts';
import { createOrganization, type Organization } from '../../src/core/organizations.ts';
import { markAssertionUsed } from '../../src/saml/one-time.ts';
import { createTestContext } from '../support/context.ts';

let ctx: AppContext;
let organization: Organization;

beforeAll(async () => {
  ctx = await createTestContext();
  ({ organization } = await createOrganization(
    ctx.sql,
    { name: 'Replays', slug: 'replays', ownerEmail: 'o@replays.test' },
    systemActor('cli'),
  ));
});
afterAll(async () => ctx.database.close());

const inAMinute = () => new Date(Date.now() + 60_000);
const rowsOf = async () =>
  (
    await ctx.sql<{ assertionId: string; expired: boolean }[]>`
      select assertion_id, expires_at < now() as expired from saml_replay_cache
      where organization_id = ${organization.id} order by assertion_id`
  ).map((row) => `${row.assertionId}${row.expired ? ' (expired)' : ''}`);
const addExpired = (assertionId: string) =>
  ctx.sql`insert into saml_replay_cache (organization_id, assertion_id, expires_at)
          values (${organization.id}, ${assertionId}, now() - interval '1 minute')`;

describe('the replay cache', () => {
  it("prunes the organization's expired ids with its first use in a process, and not again within a minute", async () => {
    await addExpired('_old-1');
    await addExpired('_old-2');
    expect(await markAssertionUsed(ctx.sql, organization.id, '_first', inAMinute())).toBe(true);
    expect(await rowsOf()).toEqual(['_first']);

    await addExpired('_old-3');
    expect(await markAssertionUsed(ctx.sql, organization.id, '_second', inAMinute())).toBe(true);
    expect(await rowsOf()).toEqual(['_first', '_old-3 (expired)', '_second']);
  });

  it('refuses an id in use, and takes over one whose row has expired though it is still there', async () => {
    expect(await markAssertionUsed(ctx.sql, organization.id, '_first', inAMinute())).toBe(false);
    expect(await markAssertionUsed(ctx.sql, organization.id, '_old-3', inAMinute())).toBe(true);
    expect(await rowsOf()).toEqual(['_first', '_old-3', '_second']);
    expect(await markAssertionUsed(ctx.sql, organization.id, '_old-3', inAMinute())).toBe(false);
  });

  it('lets only one of concurrent uses of an id through', async () => {
    const uses = await Promise.all(
      Array.from({ length: 8 }, () => markAssertionUsed(ctx.sql, organization.id, '_raced', inAMinute())),
    );
    expect(uses.filter(Boolean)).toHaveLength(1);
  });
});
