import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../src/context.ts';
import { systemActor } from '../src/core/actor.ts';
import { listCredentials, revokeCredential } from '../src/core/credentials.ts';
import { createApp } from '../src/app.ts';
import { connect } from '../src/storage/database.ts';
import { createTestContext, createTestOrganization } from './support/context.ts';
import { startInstance, type Instance } from './support/instance.ts';
import { oktaUser } from './support/scim.ts';

// State that instances on one database share: the SCIM rate limit, revocations (the other
// instances' token caches), organization policies. Instance A runs in this process; B is an
// orgsync process of its own; C has a pool of its own in this process.
const BURST = 30;
const limits = { SCIM_RATE_LIMIT: '0.001', SCIM_RATE_BURST: String(BURST) };

let ctx: AppContext;
let a: Express;
let b: Instance;
let c: Express;
let cPool: ReturnType<typeof connect>;
let x: Awaited<ReturnType<typeof createTestOrganization>>;

const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

describe.skipIf(!process.env.DATABASE_URL)('instances on one database', () => {
  beforeAll(async () => {
    ctx = await createTestContext(limits);
    a = createApp(ctx);
    const url = (ctx.database as unknown as { url: string }).url;
    b = await startInstance({ DATABASE_URL: url, RECONCILER: 'false', ...limits });
    cPool = connect(url, 4);
    c = createApp({ ...ctx, sql: cPool, database: { ...ctx.database, sql: cPool } });
    x = await createTestOrganization(ctx, 'fleet-x');
  }, 60_000);
  afterAll(async () => {
    await b?.stop();
    await cPool?.end();
    await ctx?.database.close();
  });

  it('hold the SCIM rate limit per token together: exactly the burst gets through, across three instances', async () => {
    const { scimToken } = await createTestOrganization(ctx, 'fleet-rate');
    const targets = [a, b.url, c];
    const statuses = await Promise.all(
      Array.from({ length: 3 * BURST }, (_, i) =>
        request(targets[i % 3]!)
          .get('/scim/v2/ServiceProviderConfig')
          .set(bearer(scimToken))
          .then((res) => res.status),
      ),
    );
    expect(statuses.filter((s) => s === 200)).toHaveLength(BURST);
    expect(statuses.filter((s) => s === 429)).toHaveLength(2 * BURST);
    // Every instance refuses from now on, whichever answered the last allowed request.
    for (const target of targets) {
      const res = await request(target).get('/scim/v2/ServiceProviderConfig').set(bearer(scimToken)).expect(429);
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
  });

  it('a SCIM token revoked through one instance is refused by another within a second', async () => {
    const { scimToken, adminKey } = await createTestOrganization(ctx, 'fleet-revoke');
    // B has verified (and cached) the token.
    await request(b.url).get('/scim/v2/Users').set(bearer(scimToken)).expect(200);
    const [token] = (await request(a).get('/api/scim-tokens').set(bearer(adminKey)).expect(200)).body.tokens;
    await request(a).delete(`/api/scim-tokens/${token.id}`).set(bearer(adminKey)).expect(200);
    // B may answer from its cache until a second has passed; a request it receives after that must
    // be refused, however slowly the machine runs the requests before it.
    const revokedAt = performance.now();
    let status: number;
    let sentAt: number;
    do {
      sentAt = performance.now();
      status = (await request(b.url).get('/scim/v2/Users').set(bearer(scimToken))).status;
    } while (status !== 401 && sentAt - revokedAt < 1_000);
    expect(status).toBe(401);
  });

  it('an admin API key revoked through one instance is refused by the others at once (keys are not cached)', async () => {
    const { organization, adminKey } = await createTestOrganization(ctx, 'fleet-key');
    await request(b.url).get('/api/organization').set(bearer(adminKey)).expect(200);
    const [key] = await listCredentials(ctx.sql, organization.id, 'admin');
    await revokeCredential(ctx.sql, organization.id, key!.id, systemActor('cli'), 'admin');
    await request(b.url).get('/api/organization').set(bearer(adminKey)).expect(401);
  });

  it("an organization's policy changed through one instance applies in the others at once", async () => {
    const y = await createTestOrganization(ctx, 'fleet-y');
    await request(a).patch('/api/organization').set(bearer(x.adminKey)).send({ singleOrganization: true }).expect(200);
    const refused = await request(b.url)
      .post('/scim/v2/Users')
      .set(bearer(x.scimToken))
      .set('content-type', 'application/scim+json')
      .send(JSON.stringify(oktaUser('owner@fleet-y.test')))
      .expect(409);
    expect(refused.body.detail).toMatch(/SINGLE_ORGANIZATION_POLICY/);
    await request(c).patch('/api/organization').set(bearer(x.adminKey)).send({ singleOrganization: false }).expect(200);
    await request(b.url)
      .post('/scim/v2/Users')
      .set(bearer(x.scimToken))
      .set('content-type', 'application/scim+json')
      .send(JSON.stringify(oktaUser(`owner@${y.organization.slug}.test`)))
      .expect(201);
  });
});
