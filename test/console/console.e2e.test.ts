import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor } from '../../src/core/actor.ts';
import { changeGroupMembers, createGroup } from '../../src/core/groups.ts';
import { joinOrganization } from '../../src/core/memberships.ts';
import { startServer, type RunningServer } from '../../src/http/server.ts';
import { launchChromium, SCREENSHOT_DIR, type HeadlessChromium } from '../support/browser.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

let ctx: AppContext;
let server: RunningServer;
let chromium: HeadlessChromium;
let page: Page;
let org: Awaited<ReturnType<typeof createTestOrganization>>;
const actor = systemActor('system', 'test');

beforeAll(async () => {
  ctx = await createTestContext({ HOST: '127.0.0.1' });
  org = await createTestOrganization(ctx, 'acme');
  for (let i = 1; i <= 30; i++) {
    const account = await ensureAccount(ctx.sql, { email: `p${String(i).padStart(2, '0')}@acme.test`, givenName: 'Person', familyName: `${i}` });
    await joinOrganization(ctx.sql, { organizationId: org.organization.id, accountId: account.id, source: i % 3 ? 'scim' : 'sso' }, actor);
  }
  server = await startServer(ctx);
  chromium = await launchChromium();
  page = await chromium.context.newPage();
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
});
afterAll(async () => {
  await chromium?.close();
  await server?.shutdown('test done');
});

async function shot(name: string) {
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

describe('sign-in', () => {
  it('sends a visitor without a key to sign in, refuses a wrong key, accepts the admin key', async () => {
    await page.goto(`${server.url}/console/members`);
    await page.waitForURL(/\/console\/sign-in\?/);
    await expect.poll(() => page.getByRole('status').first().textContent()).toContain('Sign in to use the console');
    await shot('sign-in');
    await page.getByLabel('Admin API key', { exact: true }).fill('oskey_wrong');
    await page.getByRole('button', { name: 'Sign in with the key' }).click();
    await expect.poll(() => page.getByRole('alert').filter({ hasText: 'not valid' }).count()).toBe(1);
    await page.getByLabel('Admin API key', { exact: true }).fill(org.adminKey);
    await page.getByRole('button', { name: 'Sign in with the key' }).click();
    await page.waitForURL(/\/console\/members$/);
    await page.getByRole('region', { name: 'Members, page 1' }).waitFor();
    expect(await page.locator('tbody tr').count()).toBe(25);
    await shot('members');
  });
});
