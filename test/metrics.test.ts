import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../src/context.ts';
import { createApp } from '../src/app.ts';
import { startMetricsServer } from '../src/metrics-endpoint.ts';
import { createReconciler } from '../src/sync/index.ts';
import { createTestContext, createTestOrganization } from './support/context.ts';
import { oktaUser, scimClient } from './support/scim.ts';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
let ctx: AppContext;
let app: Express;
let org: Awaited<ReturnType<typeof createTestOrganization>>;

beforeAll(async () => {
  ctx = await createTestContext({ METRICS_TOKEN });
  app = createApp(ctx);
  org = await createTestOrganization(ctx, 'metrics-org');
});
afterAll(async () => ctx.database.close());

const scrape = async () =>
  (await request(app).get('/metrics').set('authorization', `Bearer ${METRICS_TOKEN}`).expect(200)).text;

describe('GET /metrics', () => {
  it('needs the metrics token on the main port', async () => {
    await request(app).get('/metrics').expect(401);
    await request(app).get('/metrics').set('authorization', 'Bearer wrong-token-0123456789').expect(401);
    // Without METRICS_TOKEN (and without METRICS_PORT) there is no endpoint at all.
    const off = createApp({ ...ctx, config: { ...ctx.config, metrics: {} } });
    await request(off).get('/metrics').set('authorization', `Bearer ${METRICS_TOKEN}`).expect(404);
  });

  it('answers the series in Prometheus text format, labelled by route pattern and outcome, never by tenant or person', async () => {
    const scim = scimClient(app, org.scimToken);
    const created = await scim.post('/Users', oktaUser('metered@metrics.test')).expect(201);
    await scim.get(`/Users/${created.body.id}`).expect(200);
    await scim.get('/Users/00000000-0000-4000-8000-000000000000').expect(404);
    await scimClient(app, 'not-a-token').get('/Users').expect(401);
    // An SSO refusal (no connection can accept this) and an invitation email delivered by the reconciler.
    await request(app).post('/saml/metrics-org/acs').type('form').send({ SAMLResponse: 'bm90IHhtbA==' });
    await request(app)
      .post('/api/invitations')
      .set('authorization', `Bearer ${org.adminKey}`)
      .send({ emails: 'invitee@metrics.test' })
      .expect(201);
    const waiting = await scrape();
    expect(gauge(waiting, 'orgsync_outbox_undispatched_events')).toBeGreaterThan(0);
    expect(gauge(waiting, 'orgsync_outbox_lag_seconds')).toBeGreaterThanOrEqual(0);
    await createReconciler(ctx).events();

    const text = await scrape();
    expect(text).toContain(
      'orgsync_http_request_duration_seconds_count{method="GET",route="/scim/v2/Users/:id",status="200"} 1',
    );
    expect(text).toContain(
      'orgsync_http_request_duration_seconds_count{method="POST",route="/api/invitations",status="201"} 1',
    );
    expect(text).toContain('orgsync_scim_operations_total{method="POST",resource="Users",outcome="success"} 1');
    expect(text).toContain('orgsync_scim_operations_total{method="GET",resource="Users",outcome="not_found"} 1');
    expect(text).toContain('orgsync_scim_operations_total{method="GET",resource="Users",outcome="unauthorized"} 1');
    expect(text).toMatch(/orgsync_sso_sign_ins_total\{outcome="refused",reason="[a-z_]+"\} 1/);
    expect(text).toMatch(/orgsync_deliveries_total\{outcome="delivered"\} [1-9]/);
    expect(gauge(text, 'orgsync_outbox_undispatched_events')).toBe(0);
    expect(gauge(text, 'orgsync_outbox_lag_seconds')).toBe(0);
    expect(gauge(text, 'orgsync_deliveries_pending')).toBe(0);
    // The embedded database is one session.
    expect(gauge(text, 'orgsync_database_pool_max')).toBe(
      ctx.database.kind === 'embedded' ? 1 : ctx.config.databasePoolMax,
    );
    expect(text).toMatch(/orgsync_database_connections\{state="[a-z ]+"\} [1-9]/);
    for (const name of ['orgsync_reconciler_job_duration_seconds', 'orgsync_reconciler_job_overlaps_total']) {
      expect(text).toContain(`# TYPE ${name}`);
    }
    expect(text).toContain('orgsync_process_cpu_seconds_total');
    // No organization id, slug, user id or email anywhere in the exposition.
    for (const secret of [org.organization.id, 'metrics-org', created.body.id, 'metered@', 'invitee@']) {
      expect(text).not.toContain(secret);
    }
  });

  it('reconciler job durations and overlaps are counted per job', async () => {
    const reconciler = createReconciler({
      ...ctx,
      config: { ...ctx.config, reconciler: { ...ctx.config.reconciler, eventsSchedule: '* * * * * *' } },
    });
    reconciler.start();
    try {
      const until = Date.now() + 10_000;
      while (
        !/orgsync_reconciler_job_duration_seconds_count\{job="dispatch",result="ok"\} [1-9]/.test(await scrape())
      ) {
        if (Date.now() > until) throw new Error('the dispatch job never ran');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await reconciler.stop();
    }
  });

  it('is served on a port of its own with METRICS_PORT (no token: a private network scrapes it)', async () => {
    const server = await startMetricsServer(ctx, 0);
    try {
      const res = await fetch(server.url);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(await res.text()).toContain('# TYPE orgsync_http_request_duration_seconds histogram');
      expect((await fetch(server.url.replace('/metrics', '/api/organization'))).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

function gauge(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no ${name} in the exposition`);
  return Number(line.split(' ')[1]);
}
