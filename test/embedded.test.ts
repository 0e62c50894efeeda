import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { openContext, type AppContext } from '../src/context.ts';
import { verifyCredential } from '../src/core/credentials.ts';
import { createDemoOrganizationOnFirstStart } from '../src/demo.ts';
import { createLogger } from '../src/log.ts';

// A newcomer's first and second `npm start`: no DATABASE_URL, the embedded PostgreSQL in DATA_DIR.
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'orgsync-embedded-'));
afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

const start = (): Promise<AppContext> =>
  openContext(loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent' }), createLogger('silent'));

describe('the embedded database', () => {
  it('keeps its data and server secret across a restart; the demo organization and its secrets come only on the first start', async () => {
    const first = await start();
    let scimToken: string;
    try {
      expect(first.database.kind).toBe('embedded');
      const demo = await createDemoOrganizationOnFirstStart(first);
      expect(demo).toMatchObject({ slug: 'demo', scimBaseUrl: 'http://localhost:3000/scim/v2' });
      scimToken = demo!.scimToken;
      expect(await verifyCredential(first.sql, first.config.serverSecret, 'scim', scimToken)).toMatchObject({
        name: 'demo',
      });
    } finally {
      await first.database.close();
    }
    expect(fs.statSync(path.join(dataDir, 'server-secret')).mode & 0o777).toBe(0o600);

    const second = await start();
    try {
      expect(second.config.serverSecret).toBe(first.config.serverSecret);
      expect(await createDemoOrganizationOnFirstStart(second)).toBeNull();
      expect(await second.sql`select slug from organizations`).toEqual([{ slug: 'demo' }]);
      expect(await verifyCredential(second.sql, second.config.serverSecret, 'scim', scimToken)).toMatchObject({
        name: 'demo',
      });
    } finally {
      await second.database.close();
    }
  });
});
