import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../src/context.ts';
import { createApp } from '../src/app.ts';
import { startServer } from '../src/server.ts';
import { EMBEDDED_POOL_MAX } from '../src/storage/database.ts';
import { createTestDatabase } from './support/db.ts';
import { createTestContext } from './support/context.ts';
import { startOrgsyncProcess } from './support/process.ts';

describe('http basics', () => {
  let ctx: AppContext;
  beforeAll(async () => {
    ctx = await createTestContext({ BODY_LIMIT: '1kb' });
  });
  afterAll(async () => ctx.database.close());

  it('answers /healthz and /readyz', async () => {
    const app = createApp(ctx);
    await request(app).get('/healthz').expect(200, { status: 'ok' });
    const ready = await request(app).get('/readyz').expect(200);
    expect(ready.body.status).toBe('ok');
  });

  it('echoes a sane request id and makes one otherwise', async () => {
    const app = createApp(ctx);
    expect((await request(app).get('/healthz').set('x-request-id', 'abc-123')).headers['x-request-id']).toBe('abc-123');
    const made = (await request(app).get('/healthz').set('x-request-id', 'bad id with spaces')).headers['x-request-id'];
    expect(made).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refuses bodies above the limit with 413', async () => {
    const res = await request(createApp(ctx))
      .post('/anything')
      .set('content-type', 'application/json')
      .send({ big: 'x'.repeat(2048) });
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('payload_too_large');
  });

  it('answers unknown paths with a JSON 404', async () => {
    const res = await request(createApp(ctx)).get('/nope').expect(404);
    expect(res.body.error).toBe('not_found');
  });
});

describe('the running server', () => {
  it("makes requests and responses with the app's own prototypes, so express sets none per request", async () => {
    const ctx = await createTestContext();
    const app = createApp(ctx);
    const running = await startServer(ctx, app);
    try {
      const seen: unknown[] = [];
      // Ahead of express's own listener: the objects as Node made them.
      running.server.prependListener('request', (req, res) =>
        seen.push(Object.getPrototypeOf(req), Object.getPrototypeOf(res)),
      );
      const res = await fetch(`${running.url}/healthz`);
      expect(await res.json()).toEqual({ status: 'ok' });
      expect(seen).toEqual([app.request, app.response]);
    } finally {
      await running.shutdown('test');
    }
  });
});

describe('graceful shutdown', () => {
  it('stops accepting, finishes in-flight requests, then closes the pool', async () => {
    const ctx = await createTestContext();
    const outer = express();
    let release!: () => void;
    const started = new Promise<void>((resolve) => {
      outer.get('/slow', (_req, res) => {
        resolve();
        void new Promise<void>((r) => (release = r)).then(() => res.json({ finished: true }));
      });
    });
    outer.use(createApp(ctx));
    const running = await startServer(ctx, outer);
    const inFlight = fetch(`${running.url}/slow`).then((r) => r.json());
    await started;
    const stopped = running.shutdown('test'); // closes the listening socket before it returns
    await expect(fetch(`${running.url}/healthz`)).rejects.toThrow();
    release();
    expect(await inFlight).toEqual({ finished: true });
    await stopped;
    await expect(ctx.sql`select 1`).rejects.toThrow();
  });

  it(
    'the process exits 0 on SIGTERM after logging shutdown complete',
    { timeout: 60_000 }, // starting a process is slow on a loaded machine
    async () => {
      const db = await createTestDatabase();
      try {
        // The embedded database's socket serves one connection's protocol at a time (EMBEDDED_POOL_MAX).
        const pool: Record<string, string> =
          db.kind === 'embedded' ? { DATABASE_POOL_MAX: String(EMBEDDED_POOL_MAX) } : {};
        const orgsync = await startOrgsyncProcess({ DATABASE_URL: db.url, ...pool });
        expect(await orgsync.stop()).toBe(0);
        expect(orgsync.output()).toContain('shutdown complete');
      } finally {
        await db.close();
      }
    },
  );
});
