import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { systemActor } from '../../src/core/actor.ts';
import { inviteMembers } from '../../src/core/invitations.ts';
import { createApp } from '../../src/app.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

let ctx: AppContext;
let app: Express;
let a: Awaited<ReturnType<typeof createTestOrganization>>;
let b: Awaited<ReturnType<typeof createTestOrganization>>;

/**
 * Members with many ties: two "Ann Lee", three joined at the same instant, several never active,
 * a name-less member (listed under their email), active and suspended mixed.
 */
const PEOPLE: [
  email: string,
  given: string | null,
  family: string | null,
  status: string,
  joined: string,
  active: string | null,
][] = [
  ['ann.lee@list.test', 'Ann', 'Lee', 'active', '2026-01-01T00:00:00.000001Z', '2026-03-01T00:00:00Z'],
  ['ann.lee2@list.test', 'Ann', 'Lee', 'suspended', '2026-01-01T00:00:00.000001Z', null],
  ['bob@list.test', 'Bob', 'Stone', 'active', '2026-01-01T00:00:00.000001Z', '2026-03-01T00:00:00Z'],
  ['zed@list.test', null, null, 'active', '2026-01-02T00:00:00Z', null],
  ['carla@list.test', 'Carla', 'Annist', 'active', '2026-01-03T00:00:00Z', '2026-02-01T00:00:00.123456Z'],
  ['dave@list.test', 'Dave', 'Lee', 'suspended', '2026-01-04T00:00:00Z', null],
  ['eve_x@list.test', 'Eve', 'Moss', 'active', '2026-01-04T00:00:00Z', '2026-02-01T00:00:00.123456Z'],
  ['frank@list.test', 'frank', 'ohara', 'active', '2026-01-05T00:00:00Z', null],
];

const get = (query: string, key = a.adminKey) =>
  request(app).get(`/api/members${query}`).set('authorization', `Bearer ${key}`);

/** Every item of a listing, page by page (limit 3, so pages split inside runs of ties). */
async function all(query: string, key = a.adminKey) {
  const items: { email: string; status: string; accountId: string }[] = [];
  let total = -1;
  for (let after = '', pages = 0; pages < 50; pages++) {
    const page = await get(`${query}&limit=3${after ? `&after=${encodeURIComponent(after)}` : ''}`, key).expect(200);
    items.push(...page.body.items);
    total = page.body.total;
    if (!page.body.next) break;
    after = page.body.next;
  }
  return { emails: items.map((m) => m.email), items, total };
}

type Row = { email: string; name: string; status: string; joined: string; active: string; id: string };
/** The members of tab "members" as the database holds them, to sort independently of the API. */
async function expectedRows(): Promise<Row[]> {
  return ctx.sql<Row[]>`
    select a.email, lower(coalesce(nullif(trim(concat_ws(' ', a.given_name, a.family_name)), ''), a.email)) as name,
      m.status, to_char(m.created_at at time zone 'utc', 'YYYYMMDDHH24MISSUS') as joined,
      coalesce(to_char(m.last_active_at at time zone 'utc', 'YYYYMMDDHH24MISSUS'), '') as active, m.account_id::text as id
    from memberships m join accounts a on a.id = m.account_id
    where m.organization_id = ${a.organization.id} and m.status in ('active', 'suspended')`;
}
const byKey =
  (key: (r: Row) => string, desc = false) =>
  (x: Row, y: Row) => {
    const order = key(x) < key(y) ? -1 : key(x) > key(y) ? 1 : x.id < y.id ? -1 : x.id > y.id ? 1 : 0;
    return desc ? -order : order;
  };

beforeAll(async () => {
  ctx = await createTestContext();
  app = createApp(ctx);
  a = await createTestOrganization(ctx, 'list');
  b = await createTestOrganization(ctx, 'list-other');
  for (const [email, given, family, status, joined, active] of PEOPLE) {
    const [account] = await ctx.sql<{ id: string }[]>`
      insert into accounts (email, given_name, family_name) values (${email}, ${given}, ${family}) returning id`;
    await ctx.sql`
      insert into memberships (organization_id, account_id, status, source, created_at, last_active_at)
      values (${a.organization.id}, ${account!.id}, ${status}, 'admin', ${joined}, ${active})`;
  }
  // The other organization has a member who would sort first by every key.
  const [other] = await ctx.sql<{ id: string }[]>`
    insert into accounts (email, given_name, family_name) values ('aaa@other.test', 'Aaa', 'Aaa') returning id`;
  await ctx.sql`insert into memberships (organization_id, account_id, status, source) values (${b.organization.id}, ${other!.id}, 'active', 'admin')`;
  await inviteMembers(
    ctx.sql,
    ctx.config.serverSecret,
    a.organization.id,
    [{ email: 'invitee1@list.test' }, { email: 'ann.invited@list.test' }],
    systemActor('admin'),
  );
});
afterAll(async () => ctx.database.close());

describe('members list: sorting, keyset pages, tabs, count, search', () => {
  it('sorts by name, email, status, joined and last activity, both ways; pages of 3 split ties without gaps or repeats', async () => {
    const rows = await expectedRows();
    expect(rows).toHaveLength(PEOPLE.length + 1); // and the owner
    const keys: Record<string, (r: Row) => string> = {
      name: (r) => r.name,
      email: (r) => r.email,
      status: (r) => r.status,
      joined: (r) => r.joined,
      lastActive: (r) => r.active,
    };
    for (const [sort, key] of Object.entries(keys))
      for (const order of ['asc', 'desc'] as const) {
        const listed = await all(`?sort=${sort}&order=${order}`);
        expect(listed.emails, `${sort} ${order}`).toEqual(
          [...rows].sort(byKey(key, order === 'desc')).map((r) => r.email),
        );
        expect(listed.total).toBe(rows.length);
      }
    // The default: by name, ascending; members without a name sort under their email.
    const byName = await all('?');
    expect(new Set(byName.emails.slice(0, 2))).toEqual(new Set(['ann.lee@list.test', 'ann.lee2@list.test']));
    expect(byName.emails[2]).toBe('bob@list.test');
    expect(byName.emails.at(-1)).toBe('zed@list.test');
  });

  it('lists pending invitations on their own tab, each with its invitation; the members tab has none', async () => {
    const members = await all('?tab=members');
    expect(members.emails).not.toContain('invitee1@list.test');
    const invited = await get('?tab=invitations&sort=email').expect(200);
    expect(invited.body.total).toBe(2);
    expect(invited.body.items.map((m: { email: string }) => m.email)).toEqual([
      'ann.invited@list.test',
      'invitee1@list.test',
    ]);
    expect(
      invited.body.items.every(
        (m: { invitation: { id: string } | null; status: string }) => m.invitation?.id && m.status === 'pending',
      ),
    ).toBe(true);
    // status=pending is the invitations tab; a status of the members tab filters it, with its count.
    expect((await get('?status=pending').expect(200)).body.total).toBe(2);
    const suspended = await all('?status=suspended&sort=email');
    expect(suspended).toMatchObject({ emails: ['ann.lee2@list.test', 'dave@list.test'], total: 2 });
  });

  it('searches names and emails by prefix, any case; the count follows the search', async () => {
    const search = async (q: string, tab = 'members') => {
      const { emails, total } = await all(`?tab=${tab}&sort=email&q=${encodeURIComponent(q)}`);
      expect(total).toBe(emails.length);
      return emails;
    };
    // Given name, family name, full name, email; "ann" also finds the family name "Annist".
    expect(await search('ANN')).toEqual(['ann.lee2@list.test', 'ann.lee@list.test', 'carla@list.test'].sort());
    expect(await search('lee')).toEqual(['ann.lee2@list.test', 'ann.lee@list.test', 'dave@list.test']);
    expect(await search('ann lee')).toEqual(['ann.lee2@list.test', 'ann.lee@list.test']);
    expect(await search('Frank O')).toEqual(['frank@list.test']);
    expect(await search('zed@')).toEqual(['zed@list.test']);
    // Not inside a word, and LIKE's wildcards are plain characters.
    expect(await search('tone')).toEqual([]);
    expect(await search('eve_')).toEqual(['eve_x@list.test']);
    expect(await search('e_e')).toEqual([]);
    expect(await search('%')).toEqual([]);
    expect(await search('ann', 'invitations')).toEqual(['ann.invited@list.test']);
  });

  it('follows a renamed account at once (the sort keys are kept by the database)', async () => {
    await ctx.sql`update accounts set given_name = 'Aaron', family_name = 'Zimmer' where email = 'zed@list.test'`;
    expect((await all('?sort=name')).emails[0]).toBe('zed@list.test');
    expect(await all('?q=zimm')).toMatchObject({ emails: ['zed@list.test'], total: 1 });
  });

  it('keeps the totals exact through status changes, removals and acceptances', async () => {
    const totals = async () => ({
      members: (await get('?tab=members&limit=1').expect(200)).body.total,
      suspended: (await get('?status=suspended&limit=1').expect(200)).body.total,
      invitations: (await get('?tab=invitations&limit=1').expect(200)).body.total,
    });
    const before = await totals();
    expect(before).toEqual({ members: (await all('?')).items.length, suspended: 2, invitations: 2 });
    await ctx.sql`update memberships m set status = 'suspended' from accounts a
      where a.id = m.account_id and a.email = 'bob@list.test'`;
    await ctx.sql`update memberships m set status = 'removed' from accounts a
      where a.id = m.account_id and a.email = 'frank@list.test'`;
    await ctx.sql`update memberships m set status = 'active' from accounts a
      where a.id = m.account_id and a.email = 'invitee1@list.test'`;
    expect(await totals()).toEqual({ members: before.members, suspended: 3, invitations: 1 });
    expect((await all('?')).items).toHaveLength(before.members);
  });

  it('shows only the caller organization: items, count and search', async () => {
    const mine = await all('?sort=email');
    expect(mine.emails).not.toContain('aaa@other.test');
    const theirs = await all('?sort=email', b.adminKey);
    expect(theirs).toMatchObject({ emails: ['aaa@other.test', 'owner@list-other.test'], total: 2 });
    expect((await get('?q=aaa').expect(200)).body).toMatchObject({ items: [], total: 0 });
  });

  it('refuses a cursor that is not one, or belongs to another sort, and an unknown sort', async () => {
    const page = await get('?sort=email&limit=2').expect(200);
    expect((await get(`?sort=name&limit=2&after=${page.body.next}`).expect(400)).body.error).toBe('invalid');
    expect((await get(`?sort=email&order=desc&limit=2&after=${page.body.next}`).expect(400)).body.error).toBe(
      'invalid',
    );
    expect((await get('?after=not-a-cursor').expect(400)).body.error).toBe('invalid');
    expect((await get('?sort=uuid').expect(400)).body.error).toBe('invalid');
    const forged = Buffer.from(
      JSON.stringify({ sort: 'joined', order: 'asc', key: 'yesterday', id: a.owner.id }),
    ).toString('base64url');
    expect((await get(`?sort=joined&after=${forged}`).expect(400)).body.error).toBe('invalid');
  });
});
