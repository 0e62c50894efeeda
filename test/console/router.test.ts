import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { PAGES } from '../../src/console/router.ts';
import { createApp } from '../../src/http/app.ts';
import { createTestContext } from '../support/context.ts';

let ctx: AppContext;
let app: Express;
beforeAll(async () => {
  ctx = await createTestContext();
  app = createApp(ctx);
});
afterAll(async () => ctx.database.close());

describe('console pages and assets', () => {
  it('serves every page as a shell with its title and script, under a strict content security policy', async () => {
    for (const [name, page] of Object.entries(PAGES)) {
      const res = await request(app).get(`/console/${name}`).expect(200);
      expect(res.type).toBe('text/html');
      expect(res.text).toContain(`<title>${page.title} · orgsync console</title>`);
      expect(res.text).toContain(`<script type="module" src="/console/assets/pages/${name}.js"></script>`);
      expect(res.headers['content-security-policy']).toContain("script-src 'self'");
      expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(res.headers['cache-control']).toBe('no-store');
      // Every page's script exists.
      const script = await request(app).get(`/console/assets/pages/${name}.js`).expect(200);
      expect(script.type).toBe('application/javascript');
    }
  });

  it('marks the current page in the navigation', async () => {
    const res = await request(app).get('/console/groups').expect(200);
    expect(res.text).toContain('<a href="/console/groups" aria-current="page">Groups and role mapping</a>');
    expect(res.text).toContain('<a href="/console/members">Members</a>');
  });

  it('sends /console to the members page', async () => {
    const res = await request(app).get('/console').expect(302);
    expect(res.headers.location).toBe('/console/members');
  });

  it('sends the service root to the console', async () => {
    const res = await request(app).get('/').expect(302);
    expect(res.headers.location).toBe('/console');
  });

  it('answers 404 for unknown pages and assets, and never serves files outside its folder', async () => {
    for (const path of [
      '/console/nope',
      '/console/assets/nope.js',
      '/console/assets',
      '/console/assets/../router.ts',
      '/console/assets/%2e%2e/router.ts',
      '/console/assets/..%2frouter.ts',
      '/console/constructor',
    ]) {
      const res = await request(app).get(path);
      expect([403, 404], path).toContain(res.status);
      expect(res.text, path).not.toContain('consoleRouter');
    }
  });

  it('serves the assets the pages load', async () => {
    await request(app)
      .get('/console/assets/console.css')
      .expect(200)
      .expect('content-type', /text\/css/);
    for (const lib of ['api', 'dom', 'shell']) await request(app).get(`/console/assets/lib/${lib}.js`).expect(200);
  });
});
