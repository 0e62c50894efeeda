import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oktaUser, scimFixture } from '../support/scim.ts';

let f: Awaited<ReturnType<typeof scimFixture>>;
const ids: Record<string, string> = {};
let between: string;

beforeAll(async () => {
  f = await scimFixture('filters-org');
  const people = [
    'ada',
    'alan',
    'barbara',
    'claude',
    'donald',
    'edsger',
    'grace',
    'john',
    'ken',
    'linus',
    'margaret',
    'niklaus',
  ];
  for (const [i, name] of people.entries()) {
    const body = oktaUser(`${name}@filters.test`, {
      displayName: name.toUpperCase(),
      externalId: `ext-${name}`,
      active: i % 3 !== 0,
      title: i % 2 ? 'Engineer' : undefined,
    });
    ids[name] = (await f.client.post('/Users', body).expect(201)).body.id;
    if (name === 'edsger') {
      await new Promise((r) => setTimeout(r, 20));
      between = new Date().toISOString();
      await new Promise((r) => setTimeout(r, 20));
    }
  }
});
afterAll(async () => f.ctx.database.close());

const names = async (filter: string, extra = '') => {
  const res = await f.client.get(`/Users?filter=${encodeURIComponent(filter)}&count=200${extra}`).expect(200);
  expect(res.body.totalResults).toBe(res.body.Resources.length);
  return res.body.Resources.map((u: { userName: string }) => u.userName.split('@')[0]).sort();
};

describe('filters run in SQL', () => {
  it('string operators, case-insensitive where the schema says so', async () => {
    expect(await names('userName eq "ADA@filters.test"')).toEqual(['ada']);
    expect(await names('userName ne "ada@filters.test" and userName sw "a"')).toEqual(['alan']);
    expect(await names('userName co "AR"')).toEqual(['barbara', 'margaret']);
    expect(await names('userName ew "s@filters.test"')).toEqual(['niklaus', 'linus'].sort());
    expect(await names('externalId eq "ext-ken"')).toEqual(['ken']);
    expect(await names('externalId eq "EXT-KEN"')).toEqual([]);
    expect(await names('displayName eq "grace"')).toEqual(['grace']);
    expect(await names('emails.value eq "JOHN@filters.test"')).toEqual(['john']);
    expect(await names('emails[type eq "work" and value sw "don"]')).toEqual(['donald']);
    expect(await names(`id eq "${ids.claude}"`)).toEqual(['claude']);
    expect(await names('id eq "not-a-uuid"')).toEqual([]);
  });

  it('presence, booleans, dates and logic', async () => {
    expect(await names('title pr and userName sw "a"')).toEqual(['alan']);
    expect(await names('active eq false')).toEqual(['ada', 'claude', 'grace', 'linus']);
    expect(await names('active eq "True" and userName lt "c"')).toEqual(['alan', 'barbara']);
    expect(await names(`meta.lastModified gt "${between}"`)).toEqual([
      'grace',
      'john',
      'ken',
      'linus',
      'margaret',
      'niklaus',
    ]);
    expect(await names(`meta.created le "${between}" and not (userName sw "a" or userName sw "b")`)).toEqual([
      'claude',
      'donald',
      'edsger',
    ]);
    expect(
      await names('userName eq "ada@filters.test" or (userName eq "ken@filters.test" and active eq true)'),
    ).toEqual(['ada', 'ken']);
  });

  it('pages in SQL with a true total, a stable order, and the advertised maximum', async () => {
    const seen: string[] = [];
    for (let start = 1; start <= 12; start += 5) {
      const page = await f.client.get(`/Users?startIndex=${start}&count=5`).expect(200);
      expect(page.body).toMatchObject({ totalResults: 12, startIndex: start });
      expect(page.body.itemsPerPage).toBe(page.body.Resources.length);
      seen.push(...page.body.Resources.map((u: { id: string }) => u.id));
    }
    expect(new Set(seen).size).toBe(12);
    // Pages past the first (read by their keys first) keep a filter's rows and a sort's order.
    const sorted: string[] = [];
    const filter = encodeURIComponent('not (userName sw "k")');
    for (let start = 1; start <= 11; start += 4) {
      const page = await f.client
        .get(`/Users?filter=${filter}&sortBy=userName&sortOrder=descending&startIndex=${start}&count=4`)
        .expect(200);
      expect(page.body).toMatchObject({ totalResults: 11, startIndex: start });
      sorted.push(...page.body.Resources.map((u: { userName: string }) => u.userName));
    }
    expect(sorted).toEqual([...sorted].sort().reverse());
    expect(sorted).toHaveLength(11);
    expect(sorted).not.toContain('ken@filters.test');
    const clamped = await f.client.get('/Users?count=100000').expect(200);
    expect(clamped.body.Resources.length).toBe(12);
    const zero = await f.client.get('/Users?count=0').expect(200);
    expect(zero.body).toMatchObject({ totalResults: 12, itemsPerPage: 0, Resources: [] });
    const config = await f.client.get('/ServiceProviderConfig').expect(200);
    expect(config.body.filter).toMatchObject({ supported: true, maxResults: 200 });
    expect(config.body.bulk).toMatchObject({ supported: true, maxOperations: 1000 });
  });

  it('sorts by an attribute, ascending or descending', async () => {
    const asc = await f.client.get('/Users?sortBy=userName&count=3').expect(200);
    expect(asc.body.Resources.map((u: { userName: string }) => u.userName)).toEqual([
      'ada@filters.test',
      'alan@filters.test',
      'barbara@filters.test',
    ]);
    const desc = await f.client.get('/Users?sortBy=userName&sortOrder=descending&count=2').expect(200);
    expect(desc.body.Resources.map((u: { userName: string }) => u.userName)).toEqual([
      'niklaus@filters.test',
      'margaret@filters.test',
    ]);
    expect((await f.client.get('/Users?sortBy=emails').expect(400)).body.scimType).toBe('invalidValue');
  });

  it('attributes and excludedAttributes shape the answer', async () => {
    const only = await f.client.get(`/Users/${ids.ada}?attributes=userName`).expect(200);
    expect(only.body.userName).toBe('ada@filters.test');
    expect(only.body.emails).toBeUndefined();
    const without = await f.client
      .get(`/Users?filter=${encodeURIComponent('userName eq "ada@filters.test"')}&excludedAttributes=emails,name`)
      .expect(200);
    expect(without.body.Resources[0].emails).toBeUndefined();
    expect(without.body.Resources[0].name).toBeUndefined();
    expect(without.body.Resources[0].userName).toBe('ada@filters.test');
  });

  it('POST /.search takes the same parameters in the body', async () => {
    const res = await f.client
      .post('/Users/.search', {
        schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
        filter: 'userName sw "m"',
        count: 10,
      })
      .expect(200);
    expect(res.body.Resources.map((u: { userName: string }) => u.userName)).toEqual(['margaret@filters.test']);
  });

  it('discovery endpoints describe users (with the enterprise extension) and groups', async () => {
    const types = await f.client.get('/ResourceTypes').expect(200);
    const user = types.body.Resources.find((r: { id: string }) => r.id === 'User');
    expect(user.schemaExtensions[0].schema).toBe('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User');
    expect(types.body.Resources.map((r: { id: string }) => r.id)).toContain('Group');
    const schemas = await f.client.get('/Schemas').expect(200);
    expect(schemas.body.totalResults).toBeGreaterThanOrEqual(3);
  });
  it('a multi-valued attribute without a sub-attribute filters on its value (RFC 7644 §3.4.2.2)', async () => {
    expect(await names('emails co "LAN@"')).toEqual(['alan']);
    expect(await names('emails eq "Ken@filters.test"')).toEqual(['ken']);
    expect(await names('emails sw "mar" or emails ew "us@filters.test"')).toEqual(['linus', 'margaret', 'niklaus']);
    expect(await names('emails eq "nobody@filters.test"')).toEqual([]);
    expect((await names('emails pr')).length).toBe(12);
    const phone = (
      await f.client
        .patch(`/Users/${ids.ada}`, [
          { op: 'add', path: 'phoneNumbers', value: [{ type: 'work', value: '+1 555 0199' }] },
        ])
        .expect(200)
    ).body;
    expect(phone.phoneNumbers).toEqual([{ type: 'work', value: '+1 555 0199' }]);
    expect(await names('phoneNumbers co "0199"')).toEqual(['ada']);

    const group = (
      await f.client.post('/Groups', { displayName: 'Filtered', members: [{ value: ids.ken }] }).expect(201)
    ).body;
    await f.client.post('/Groups', { displayName: 'Other', members: [{ value: ids.ada }] }).expect(201);
    const groups = async (filter: string) =>
      (
        await f.client.get(`/Groups?excludedAttributes=members&filter=${encodeURIComponent(filter)}`).expect(200)
      ).body.Resources.map((g: { id: string }) => g.id);
    expect(await groups(`members eq "${ids.ken}"`)).toEqual([group.id]);
    expect(await groups(`members.value eq "${ids.ken}"`)).toEqual([group.id]);
    expect(await groups('members eq "not-a-uuid"')).toEqual([]);
  });

  it('dates compare at the millisecond precision of the values returned', async () => {
    // The columns keep microseconds; make sure these have some, as ~999 in 1000 rows do.
    await f.ctx
      .sql`update scim_users set updated_at = date_trunc('milliseconds', updated_at) + interval '456 microseconds',
                      created_at = date_trunc('milliseconds', created_at) + interval '789 microseconds' where account_id = ${ids.ken!}`;
    const ken = (await f.client.get(`/Users/${ids.ken}`).expect(200)).body;
    expect(ken.meta.lastModified).toMatch(/\.\d{3}Z$/);
    expect(await names(`meta.lastModified eq "${ken.meta.lastModified}"`)).toEqual(['ken']);
    expect(await names(`meta.created eq "${ken.meta.created}"`)).toEqual(['ken']);
    const later = await names(`meta.lastModified gt "${ken.meta.lastModified}"`);
    expect(later).not.toContain('ken');
    expect(await names(`meta.lastModified ge "${ken.meta.lastModified}"`)).toEqual(['ken', ...later].sort());
    expect(await names(`meta.lastModified le "${ken.meta.lastModified}" and userName eq "ken@filters.test"`)).toEqual([
      'ken',
    ]);
    expect(await names(`meta.lastModified lt "${ken.meta.lastModified}" and userName eq "ken@filters.test"`)).toEqual(
      [],
    );
    expect(await names(`meta.lastModified ne "${ken.meta.lastModified}"`)).not.toContain('ken');

    const { id: groupId } = (await f.client.post('/Groups', { displayName: 'Dated' }).expect(201)).body;
    await f.ctx.sql`update groups set updated_at = date_trunc('milliseconds', updated_at) + interval '123 microseconds',
                      created_at = date_trunc('milliseconds', created_at) + interval '999 microseconds' where id = ${groupId}`;
    const group = (await f.client.get(`/Groups/${groupId}`).expect(200)).body;
    const dated = await f.client
      .get(
        `/Groups?filter=${encodeURIComponent(`meta.lastModified eq "${group.meta.lastModified}" and displayName eq "Dated"`)}`,
      )
      .expect(200);
    expect(dated.body.Resources.map((g: { id: string }) => g.id)).toEqual([group.id]);
    const after = await f.client
      .get(`/Groups?filter=${encodeURIComponent(`meta.created gt "${group.meta.created}" and displayName eq "Dated"`)}`)
      .expect(200);
    expect(after.body.totalResults).toBe(0);
  });
});
