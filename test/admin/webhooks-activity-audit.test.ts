import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import { createApp } from '../../src/app.ts';
import type { AppContext } from '../../src/context.ts';
import { createReconciler } from '../../src/sync/index.ts';
import type { Reconciler } from '../../src/sync/reconciler.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';

let ctx: AppContext;
let app: Express;
let reconciler: Reconciler;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let a: Awaited<ReturnType<typeof createTestOrganization>>;
let b: Awaited<ReturnType<typeof createTestOrganization>>;

beforeAll(async () => {
  ctx = await createTestContext({
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    // One attempt, so a failure is a dead letter at once; the breaker opens after one failure.
    DELIVERY_MAX_ATTEMPTS: '1',
    WEBHOOK_BREAKER_FAILURES: '1',
    WEBHOOK_BREAKER_COOLDOWN_MS: '100',
  });
  app = createApp(ctx);
  reconciler = createReconciler(ctx);
  receiver = await startWebhookReceiver();
  a = await createTestOrganization(ctx, 'hooks-a');
  b = await createTestOrganization(ctx, 'hooks-b');
});
afterAll(async () => {
  await receiver.close();
  await Promise.all((ctx.beforeClose ?? []).map((flush) => flush()));
  await ctx.database.close();
});

const as = (key: string) => ({ authorization: `Bearer ${key}` });

describe('webhook endpoints: enable and disable', () => {
  it('pauses and resumes an endpoint, audited; refuses bad input and other organizations', async () => {
    const { body: endpoint } = await request(app)
      .post('/api/webhooks')
      .set(as(a.adminKey))
      .send({ url: 'https://hooks.example.com/toggle' })
      .expect(201);
    const off = await request(app)
      .patch(`/api/webhooks/${endpoint.id}`)
      .set(as(a.adminKey))
      .send({ enabled: false })
      .expect(200);
    expect(off.body).toMatchObject({ id: endpoint.id, enabled: false });
    expect(off.body.secret).toBeUndefined();
    await request(app).patch(`/api/webhooks/${endpoint.id}`).set(as(a.adminKey)).send({ enabled: 'no' }).expect(400);
    await request(app).patch(`/api/webhooks/${endpoint.id}`).set(as(b.adminKey)).send({ enabled: true }).expect(404);
    await request(app).patch('/api/webhooks/not-a-uuid').set(as(a.adminKey)).send({ enabled: true }).expect(404);
    const [row] = await ctx.sql`select enabled from webhook_endpoints where id = ${endpoint.id}`;
    expect(row).toEqual({ enabled: false });
    await request(app).patch(`/api/webhooks/${endpoint.id}`).set(as(a.adminKey)).send({ enabled: true }).expect(200);
    const audit = await request(app).get(`/api/audit?target=${endpoint.id}`).set(as(a.adminKey)).expect(200);
    expect(audit.body.items.map((e: { action: string }) => e.action)).toEqual([
      'webhook.enabled',
      'webhook.disabled',
      'webhook.created',
    ]);
    expect(audit.body.items[0].targetName).toBe('https://hooks.example.com/toggle');
    await request(app).delete(`/api/webhooks/${endpoint.id}`).set(as(a.adminKey)).expect(204);
  });
});

describe('deliveries to a real receiver', () => {
  it('keeps the HTTP response code of every attempt; the dead letter is retried and delivered', async () => {
    const { body: endpoint } = await request(app)
      .post('/api/webhooks')
      .set(as(a.adminKey))
      .send({ url: receiver.url, events: ['group.created'] })
      .expect(201);
    receiver.setMode('fail');
    await request(app).post('/api/groups').set(as(a.adminKey)).send({ displayName: 'Hooked' }).expect(201);
    await reconciler.events();
    expect(receiver.received.map((r) => r.status)).toEqual([500]);

    const dead = await request(app).get(`/api/webhooks/${endpoint.id}/deliveries`).set(as(a.adminKey)).expect(200);
    expect(dead.body.items).toEqual([
      expect.objectContaining({
        eventType: 'group.created',
        status: 'dead',
        attempts: 1,
        responseStatus: 500,
        lastError: 'webhook answered HTTP 500',
      }),
    ]);
    const deliveryId = dead.body.items[0].id as string;
    // The breaker opened after the failure; the listing shows it.
    const endpoints = await request(app).get('/api/webhooks').set(as(a.adminKey)).expect(200);
    expect(endpoints.body.items[0]).toMatchObject({ id: endpoint.id, consecutiveFailures: 1 });
    expect(endpoints.body.items[0].circuitOpenUntil).not.toBeNull();
    // The dead letters list has the response code too.
    const letters = await request(app).get('/api/deliveries?status=dead').set(as(a.adminKey)).expect(200);
    expect(letters.body.items).toEqual([expect.objectContaining({ id: deliveryId, responseStatus: 500 })]);

    // Another organization sees none of it.
    await request(app).get(`/api/webhooks/${endpoint.id}/deliveries`).set(as(b.adminKey)).expect(404);
    expect(
      (await request(app).get(`/api/deliveries/${deliveryId}/attempts`).set(as(b.adminKey)).expect(200)).body.items,
    ).toEqual([]);
    await request(app).get('/api/deliveries/x1/attempts').set(as(a.adminKey)).expect(400);

    receiver.setMode('ok');
    await request(app)
      .post('/api/deliveries/retry')
      .set(as(a.adminKey))
      .send({ ids: [deliveryId] })
      .expect(200);
    // The circuit is open for 100 ms; past that the retried delivery is the trial.
    await expect
      .poll(async () => {
        await reconciler.events();
        return receiver.delivered().length;
      })
      .toBe(1);
    const attempts = await request(app).get(`/api/deliveries/${deliveryId}/attempts`).set(as(a.adminKey)).expect(200);
    expect(attempts.body.items).toEqual([
      expect.objectContaining({ responseStatus: 500, error: 'webhook answered HTTP 500' }),
      expect.objectContaining({ responseStatus: 204, error: null }),
    ]);
    const delivered = await request(app).get(`/api/webhooks/${endpoint.id}/deliveries`).set(as(a.adminKey)).expect(200);
    expect(delivered.body.items[0]).toMatchObject({ status: 'delivered', responseStatus: 204, lastError: null });
    expect((await request(app).get('/api/webhooks').set(as(a.adminKey)).expect(200)).body.items[0]).toMatchObject({
      consecutiveFailures: 0,
      circuitOpenUntil: null,
    });
  });

  it("pages an endpoint's deliveries newest first", async () => {
    const { body: endpoint } = await request(app)
      .post('/api/webhooks')
      .set(as(b.adminKey))
      .send({ url: receiver.url, events: ['group.created'] })
      .expect(201);
    for (const name of ['One', 'Two', 'Three']) {
      await request(app).post('/api/groups').set(as(b.adminKey)).send({ displayName: name }).expect(201);
    }
    await reconciler.events();
    const first = await request(app)
      .get(`/api/webhooks/${endpoint.id}/deliveries?limit=2`)
      .set(as(b.adminKey))
      .expect(200);
    const second = await request(app)
      .get(`/api/webhooks/${endpoint.id}/deliveries?limit=2&before=${first.body.next}`)
      .set(as(b.adminKey))
      .expect(200);
    const ids = [...first.body.items, ...second.body.items].map((d: { id: string }) => Number(d.id));
    expect(ids).toHaveLength(3);
    expect([...ids].sort((x, y) => y - x)).toEqual(ids);
    expect(second.body.next).toBeNull();
  });
});

describe('SCIM request log', () => {
  it('keeps the error detail a refused request was answered with', async () => {
    const scim = { authorization: `Bearer ${a.scimToken}`, 'content-type': 'application/scim+json' };
    await request(app).get('/scim/v2/Users/00000000-0000-0000-0000-000000000000').set(scim).expect(404);
    await request(app).get('/scim/v2/Users?filter=userName%20eq').set(scim).expect(400);
    await request(app).get('/scim/v2/Users').set(scim).expect(200);
    const { body } = await request(app).get('/api/scim-tokens').set(as(a.adminKey)).expect(200);
    const tokenId = body.tokens[0].id as string;
    // The log is written in batches off the request path.
    await expect
      .poll(
        async () =>
          (await request(app).get(`/api/scim-tokens/${tokenId}/requests`).set(as(a.adminKey))).body.items.length,
      )
      .toBe(3);
    const log = await request(app).get(`/api/scim-tokens/${tokenId}/requests`).set(as(a.adminKey)).expect(200);
    expect(log.body.items.map((r: { status: number }) => r.status)).toEqual([200, 400, 404]);
    expect(log.body.items[0].errorDetail).toBeNull();
    expect(log.body.items[1].errorDetail).toMatch(/^invalidFilter: /);
    expect(log.body.items[2].errorDetail).toMatch(/not found/);
  });
});

describe('audit log', () => {
  it('names targets beside their ids and filters by a name', async () => {
    const { body: group } = await request(app)
      .post('/api/groups')
      .set(as(a.adminKey))
      .send({ displayName: 'Named targets' })
      .expect(201);
    await request(app)
      .put(`/api/members/${a.owner.id}/roles`)
      .set(as(a.adminKey))
      .send({ roles: ['owner', 'admin'] })
      .expect(200);
    const byGroup = await request(app).get(`/api/audit?target=${group.id}`).set(as(a.adminKey)).expect(200);
    expect(byGroup.body.items[0]).toMatchObject({
      targetType: 'group',
      targetId: group.id,
      targetName: 'Named targets',
    });
    const byName = await request(app).get('/api/audit?target=Named%20targets').set(as(a.adminKey)).expect(200);
    expect(byName.body.items.map((e: { id: string }) => e.id)).toEqual(
      byGroup.body.items.map((e: { id: string }) => e.id),
    );
    const byEmail = await request(app)
      .get('/api/audit?target=OWNER@hooks-a.test&action=member')
      .set(as(a.adminKey))
      .expect(200);
    expect(byEmail.body.items[0]).toMatchObject({
      action: 'member.role_changed',
      targetType: 'account',
      targetId: a.owner.id,
      targetName: 'owner@hooks-a.test',
    });
  });

  it('exports the filtered range as CSV and JSON Lines, every page of it', async () => {
    const id = b.organization.id;
    await ctx.sql`
      insert into audit_log (organization_id, channel, actor_type, actor_name, action, target_type, target_id, details)
      select ${id}, 'admin', 'admin_key', 'bulk', 'group.renamed', 'group', 'g' || n, jsonb_build_object('n', n)
      from generate_series(1, 2500) n`;
    await ctx.sql`
      insert into audit_log (organization_id, channel, actor_type, actor_name, action, target_type, target_id, details)
      values (${id}, 'admin', 'admin_key', 'bulk', 'group.deleted', 'group', 'x', ${ctx.sql.json({ displayName: '=cmd()' })})`;

    const jsonl = await request(app)
      .get('/api/audit/export?format=jsonl&action=group.renamed')
      .set(as(b.adminKey))
      .buffer(true)
      .parse((res, done) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => done(null, text));
      })
      .expect(200);
    expect(jsonl.headers['content-type']).toMatch(/^application\/jsonl/);
    expect(jsonl.headers['content-disposition']).toMatch(/^attachment; filename="audit-.*\.jsonl"$/);
    const lines = (jsonl.body as string)
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { details: { n: number } });
    expect(lines).toHaveLength(2500);
    expect(lines[0]!.details.n).toBe(2500);
    expect(lines.at(-1)!.details.n).toBe(1);

    const csv = await request(app)
      .get('/api/audit/export?format=csv&action=group.deleted')
      .set(as(b.adminKey))
      .expect(200);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    const [header, row, end] = csv.text.split('\r\n');
    expect(header).toBe('id,at,channel,actorType,actorId,actorName,action,targetType,targetId,targetName,details');
    // A cell a spreadsheet would run as a formula is defused.
    expect(row).toContain(`,group.deleted,group,x,'=cmd(),"{""displayName"":""=cmd()""}"`);
    expect(end).toBe('');

    // Another organization's export has none of it; a viewer may not export.
    const other = await request(app)
      .get('/api/audit/export?format=csv&action=group.deleted')
      .set(as(a.adminKey))
      .expect(200);
    expect(other.text.split('\r\n')).toHaveLength(2);
    await request(app).get('/api/audit/export?format=xml').set(as(b.adminKey)).expect(400);
  });

  it('refuses an export of more than 100,000 entries, naming the bound; a narrower filter is answered', async () => {
    const big = await createTestOrganization(ctx, 'hooks-big');
    await ctx.sql`
      insert into audit_log (organization_id, channel, actor_type, actor_name, action)
      select ${big.organization.id}, 'admin', 'admin_key', 'bulk', 'group.renamed' from generate_series(1, 100001)`;
    const refused = await request(app).get('/api/audit/export?format=jsonl').set(as(big.adminKey)).expect(400);
    expect(refused.body).toMatchObject({ error: 'invalid', details: { max: 100_000 } });
    expect(refused.body.message).toMatch(/narrow the range/);
    const narrow = await request(app)
      .get('/api/audit/export?format=csv&action=organization')
      .set(as(big.adminKey))
      .expect(200);
    expect(narrow.text.split('\r\n').filter(Boolean).length).toBeGreaterThan(1);
  });
});
