import crypto from 'node:crypto';
import http from 'node:http';
import client from 'prom-client';
import type { RequestHandler } from 'express';
import type { AppContext } from './context.ts';
import { registry } from './metrics.ts';
import { outboxBacklog } from './sync/outbox.ts';

/**
 * The exposition: the process's instruments plus gauges read from the database at scrape time
 * (outbox backlog, connections), so each answer is current without any polling in between.
 */
export function metricsExposition(ctx: AppContext): () => Promise<{ contentType: string; body: string }> {
  const database = new client.Registry();
  let backlog: ReturnType<typeof outboxBacklog> | undefined;
  // One query per scrape for the three outbox gauges.
  const readBacklog = () => (backlog ??= outboxBacklog(ctx.sql).finally(() => (backlog = undefined)));
  new client.Gauge({
    name: 'orgsync_outbox_lag_seconds',
    help: 'Age of the oldest domain event not yet dispatched (0: none waiting)',
    registers: [database],
    async collect() {
      this.set((await readBacklog()).lagSeconds);
    },
  });
  new client.Gauge({
    name: 'orgsync_outbox_undispatched_events',
    help: 'Domain events waiting for dispatch (all instances)',
    registers: [database],
    async collect() {
      this.set((await readBacklog()).undispatched);
    },
  });
  new client.Gauge({
    name: 'orgsync_deliveries_pending',
    help: 'Email and webhook deliveries waiting to be sent or retried (all instances)',
    registers: [database],
    async collect() {
      this.set((await readBacklog()).pendingDeliveries);
    },
  });
  new client.Gauge({
    name: 'orgsync_database_pool_max',
    help: 'Connections this instance may open to the database (DATABASE_POOL_MAX)',
    registers: [database],
    collect() {
      this.set(ctx.database.kind === 'embedded' ? 1 : ctx.config.databasePoolMax);
    },
  });
  new client.Gauge({
    name: 'orgsync_database_connections',
    help: "The database server's connections to this database by state (active, idle, ...), as PostgreSQL sees them",
    labelNames: ['state'] as const,
    registers: [database],
    async collect() {
      const rows = await ctx.sql<{ state: string; n: number }[]>`
        select coalesce(state, 'unknown') as state, count(*)::int as n from pg_stat_activity
        where datname = current_database() group by 1`;
      this.reset();
      for (const row of rows) this.set({ state: row.state }, row.n);
    },
  });
  const merged = client.Registry.merge([registry, database]);
  return async () => ({ contentType: merged.contentType, body: await merged.metrics() });
}

/** `GET /metrics` on the main port: only with `Authorization: Bearer <METRICS_TOKEN>`. */
export function metricsRoute(ctx: AppContext, token: string): RequestHandler {
  const expose = metricsExposition(ctx);
  const expected = crypto.createHash('sha256').update(token).digest();
  return (req, res, next) => {
    const given = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '')?.[1] ?? '';
    if (!crypto.timingSafeEqual(crypto.createHash('sha256').update(given).digest(), expected)) {
      res.setHeader('www-authenticate', 'Bearer realm="orgsync metrics"');
      res.status(401).json({ error: 'unauthenticated', message: 'send the METRICS_TOKEN as a Bearer token' });
      return;
    }
    expose().then(({ contentType, body }) => {
      res.type(contentType).send(body);
    }, next);
  };
}

/**
 * `GET /metrics` on a port of its own (METRICS_PORT), for a scraper on the private network: the
 * public port (behind the load balancer) does not serve it. Resolves with the server's URL and a
 * close function.
 */
export async function startMetricsServer(
  ctx: AppContext,
  port: number,
): Promise<{ url: string; close(): Promise<void> }> {
  const expose = metricsExposition(ctx);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    expose().then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
      (error: unknown) => {
        ctx.log.error({ err: error }, 'metrics exposition failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ctx.config.host, () => resolve());
  });
  const address = server.address();
  const url = `http://${ctx.config.host}:${typeof address === 'object' && address ? address.port : port}/metrics`;
  return { url, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
