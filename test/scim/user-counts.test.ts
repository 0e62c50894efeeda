import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScimRequest } from '../../src/scim/auth.ts';
import { listUsersResponse } from '../../src/scim/users.ts';
import type { Sql } from '../../src/storage/database.ts';
import { createTestOrganization } from '../support/context.ts';
import { oktaUser, scimClient, scimFixture } from '../support/scim.ts';

/**
 * The Users list's unfiltered totalResults comes from the counters of migration 111, which a
 * trigger keeps exact: it must equal the organization's users whatever path wrote them, and
 * answering it must not read the organization's users. Reads are measured without timing, from
 * PostgreSQL's per-transaction statistics (as groups-scale.test.ts does).
 */
let f: Awaited<ReturnType<typeof scimFixture>>;
let other: ReturnType<typeof scimClient>;
let otherId: string;

beforeAll(async () => {
  f = await scimFixture('counts-a');
  const b = await createTestOrganization(f.ctx, 'counts-b');
  other = scimClient(f.app, b.scimToken);
  otherId = b.organization.id;
});
afterAll(async () => f.ctx.database.close());

type Client = ReturnType<typeof scimClient>;

/** The unfiltered total, on a page of one: a full page, so the total is not read off the page. */
const listed = async (client: Client) => (await client.get('/Users?count=1').expect(200)).body.totalResults as number;
const stored = async (organizationId: string) =>
  (await f.ctx.sql`select count(*)::int as n from scim_users where organization_id = ${organizationId}`)[0]!
    .n as number;
const create = async (client: Client, email: string, extra: Record<string, unknown> = {}) =>
  (await client.post('/Users', oktaUser(email, extra)).expect(201)).body.id as string;

describe('the unfiltered Users total', () => {
  it('follows creates and deletes, one organization apart from the other', async () => {
    const a = f.org.organization.id;
    expect(await listed(f.client)).toBe(0);
    const ids = [await create(f.client, 'a1@counts.test'), await create(f.client, 'a2@counts.test')];
    // Created inactive: the step-by-step path, not the one statement.
    ids.push(await create(f.client, 'a3@counts.test', { active: false }));
    await create(other, 'b1@counts.test');
    await create(other, 'b2@counts.test');
    expect([await listed(f.client), await listed(other)]).toEqual([3, 2]);

    // Deactivating is an update: no count moves.
    await f.client.patch(`/Users/${ids[0]}`, [{ op: 'replace', value: { active: false } }]).expect(200);
    expect(await listed(f.client)).toBe(3);

    await f.client.delete(`/Users/${ids[0]}`).expect(204);
    await f.client.delete(`/Users/${ids[2]}`).expect(204);
    expect([await listed(f.client), await listed(other)]).toEqual([1, 2]);

    // The same person provisioned again, and in the other organization too.
    await create(f.client, 'a1@counts.test');
    await create(other, 'a2@counts.test');
    expect([await listed(f.client), await listed(other)]).toEqual([2, 3]);
    expect([await listed(f.client), await listed(other)]).toEqual([await stored(a), await stored(otherId)]);

    // A filtered list still counts its matches.
    const active = await f.client.get('/Users?count=1&filter=active eq true').expect(200);
    expect(active.body.totalResults).toBe(2);
  });
});

describe('answering the unfiltered total', () => {
  const SMALL = 5;
  const LARGE = 2000;
  let small: ScimRequest;
  let large: ScimRequest;

  /** An organization with `size` users, written directly (the trigger counts them as any insert). */
  async function organizationOf(slug: string, size: number): Promise<ScimRequest> {
    const { organization } = await createTestOrganization(f.ctx, slug);
    const [token] = await f.ctx
      .sql`select id from credentials where organization_id = ${organization.id} and kind = 'scim'`;
    await f.ctx.sql`
      with people as (
        insert into accounts (email) select ${slug} || n || '@counts.test' from generate_series(1, ${size}) n returning id, email
      )
      insert into scim_users (organization_id, account_id, user_name, resource)
      select ${organization.id}, id, email, '{}' from people`;
    return {
      app: f.ctx,
      organizationId: organization.id,
      credentialId: token!.id,
      actor: { type: 'scim_token', id: token!.id, name: 'idp', channel: 'scim' },
    };
  }

  beforeAll(async () => {
    small = await organizationOf('counts-small', SMALL);
    large = await organizationOf('counts-large', LARGE);
  });

  /** A page of 2 without a filter, and the scim_users tuples (table and index entries) it read. */
  async function pageReads(scim: ScimRequest) {
    return f.ctx.sql.begin(async (tx) => {
      const read = async () =>
        Number(
          (
            await tx<{ n: string }[]>`
              select sum(pg_stat_get_xact_tuples_returned(oid)) as n from pg_class
              where oid = 'scim_users'::regclass
                 or oid in (select indexrelid from pg_index where indrelid = 'scim_users'::regclass)`
          )[0]!.n,
        );
      const before = await read();
      const page = await listUsersResponse({ ...scim, app: { ...f.ctx, sql: tx as unknown as Sql } }, { count: 2 });
      return { itemsPerPage: page.itemsPerPage, total: page.totalResults, rowsRead: (await read()) - before };
    });
  }

  it('reads no more users for an organization of 2000 than for one of 5', async () => {
    const ofSmall = await pageReads(small);
    const ofLarge = await pageReads(large);
    expect(ofSmall).toMatchObject({ itemsPerPage: 2, total: SMALL });
    expect(ofLarge).toMatchObject({ itemsPerPage: 2, total: LARGE });
    // The page's own rows; a count(*) would read every user of the organization.
    expect(ofLarge.rowsRead).toBeLessThanOrEqual(ofSmall.rowsRead);
    expect(ofLarge.rowsRead).toBeLessThan(SMALL);
  });
});
