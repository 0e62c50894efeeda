import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signAssertion, responseXml } from './saml/support/idp.ts';
import { postResponse, samlFixture, type SamlFixture } from './saml/support/setup.ts';
import { scimClient } from './support/scim.ts';

/**
 * The SCIM request log and the SSO attempt log, newest first by their numeric ids and paged with
 * `before` (issue 11: ordered as text, requests 10–25 of 25 never showed), and a sign-in counting
 * as the member's last activity.
 */
let f: SamlFixture;
beforeAll(async () => {
  f = await samlFixture('activity');
});
afterAll(async () => f.ctx.database.close());

const admin = () => ({ authorization: `Bearer ${f.adminKey}` });
const ENTRIES = 25;

/** Every item of a log, following `next` page by page. */
async function readAll<T extends { id: string }>(path: string, limit: number): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let before: string | null = null;
  for (let pages = 1; ; pages++) {
    const res: { body: { items: T[]; next: string | null } } = await request(f.app)
      .get(path)
      .query({ limit, ...(before ? { before } : {}) })
      .set(admin())
      .expect(200);
    items.push(...res.body.items);
    before = res.body.next;
    if (!before) return { items, pages };
    expect(pages, 'paging does not end').toBeLessThan(ENTRIES);
  }
}

function expectNewestFirst(ids: string[]) {
  for (let i = 1; i < ids.length; i++) expect(BigInt(ids[i - 1]!) > BigInt(ids[i]!), ids.join(' ')).toBe(true);
}

describe('the SCIM request log', () => {
  it(`shows all ${ENTRIES} requests newest first, page by page`, async () => {
    const token = (await request(f.app).post('/api/scim-tokens').set(admin()).send({ name: 'paged' }).expect(201)).body;
    const client = scimClient(f.app, token.secret);
    for (let i = 1; i <= ENTRIES; i++) await client.get(`/Users?startIndex=${i}`).expect(200);
    // Entries are written in batches off the request path: write what is pending now.
    await Promise.all((f.ctx.beforeClose ?? []).map((flush) => flush()));

    const { items, pages } = await readAll<{ id: string; path: string }>(
      `/api/scim-tokens/${token.token.id}/requests`,
      10,
    );
    expect(items.map((e) => e.path)).toEqual(
      Array.from({ length: ENTRIES }, (_, i) => `/scim/v2/Users?startIndex=${ENTRIES - i}`),
    );
    expectNewestFirst(items.map((e) => e.id));
    expect(pages).toBe(3);
  });
});

describe('the SSO attempt log', () => {
  it(`shows all ${ENTRIES} attempts newest first, page by page`, async () => {
    // Refused before any XML is read (cheap), then one refusal that names the person, last.
    const path = `/saml/${f.organization.slug}/acs`;
    for (let i = 1; i < ENTRIES; i++) {
      await request(f.app)
        .post(path)
        .type('form')
        .send({ SAMLResponse: `attempt ${i}` })
        .expect(403);
    }
    const stranger = signAssertion(
      responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: 'stranger@elsewhere.test' }),
      f.idp,
    );
    expect((await postResponse(f, stranger)).status).toBe(403);

    const { items, pages } = await readAll<{ id: string; email: string | null; reason: string }>(
      '/api/saml/attempts',
      10,
    );
    expect(items).toHaveLength(ENTRIES);
    expect(items[0]).toMatchObject({ email: 'stranger@elsewhere.test', reason: 'not_allowed_to_join' });
    expect(new Set(items.slice(1).map((a) => a.reason))).toEqual(new Set(['malformed']));
    expectNewestFirst(items.map((a) => a.id));
    expect(pages).toBe(3);
  });
});

describe('last activity', () => {
  it('a sign-in updates the member’s last activity', async () => {
    const owner = async () =>
      (
        (await request(f.app).get('/api/members').set(admin()).expect(200)).body.items as { lastActiveAt: string }[]
      )[0]!;
    await f.ctx.sql`update memberships set last_active_at = now() - interval '30 days'
                    where organization_id = ${f.organization.id}`;
    const before = new Date((await owner()).lastActiveAt);
    const xml = signAssertion(
      responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: 'owner@activity.test' }),
      f.idp,
    );
    expect((await postResponse(f, xml)).status).toBe(303);
    const after = new Date((await owner()).lastActiveAt);
    const [database] = await f.ctx.sql<{ now: Date }[]>`select now() as now`;
    expect(after.getTime()).toBeGreaterThan(before.getTime() + 29 * 86_400_000);
    expect(after.getTime()).toBeLessThanOrEqual(database!.now.getTime());
  });
});
