import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor } from '../../src/core/actor.ts';
import { createGroup } from '../../src/core/groups.ts';
import { inviteMembers } from '../../src/core/invitations.ts';
import { joinOrganization } from '../../src/core/memberships.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { launchChromium, SCREENSHOT_DIR, type HeadlessChromium } from '../support/browser.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

let ctx: AppContext;
let server: RunningServer;
let chromium: HeadlessChromium;
let page: Page;
let org: Awaited<ReturnType<typeof createTestOrganization>>;
const pageErrors: string[] = [];
const actor = systemActor('system', 'test');
const NAMES = ['Ann Lee', 'Bob Stone', 'Carla Annist', 'Dave Lee', 'Eve Moss', 'Frank Ohara'];

beforeAll(async () => {
  ctx = await createTestContext({ HOST: '127.0.0.1' });
  org = await createTestOrganization(ctx, 'wide');
  for (let i = 0; i < 30; i++) {
    const [givenName, familyName] = NAMES[i % NAMES.length]!.split(' ');
    const account = await ensureAccount(ctx.sql, {
      email: `m${String(i).padStart(2, '0')}@wide.test`,
      givenName,
      familyName,
    });
    await joinOrganization(
      ctx.sql,
      { organizationId: org.organization.id, accountId: account.id, source: 'admin' },
      actor,
    );
  }
  await inviteMembers(
    ctx.sql,
    ctx.config.serverSecret,
    org.organization.id,
    ['inv1@wide.test', 'inv2@wide.test', 'inv3@wide.test'].map((email) => ({ email })),
    actor,
  );
  await createGroup(
    ctx.sql,
    { organizationId: org.organization.id, source: 'local', displayName: 'Engineering' },
    actor,
  );
  await createGroup(ctx.sql, { organizationId: org.organization.id, source: 'local', displayName: 'Sales' }, actor);
  server = await startServer(ctx);
  chromium = await launchChromium();
  page = await chromium.context.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource'))
      pageErrors.push(message.text());
  });
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.goto(`${server.url}/console/members`);
  await page.waitForURL(/\/console\/sign-in\?/);
  await page.getByLabel('Admin API key', { exact: true }).fill(org.adminKey);
  await page.getByRole('button', { name: 'Sign in with the key' }).click();
  await page.waitForURL(/\/console\/members$/);
});
afterAll(async () => {
  await chromium?.close();
  await server?.shutdown('test done');
});

/** Screenshots at the console's two widths: a laptop (1366) and a phone (390). */
async function shots(name: string) {
  for (const width of [1366, 390]) {
    await page.setViewportSize({ width, height: width === 390 ? 844 : 900 });
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}-${width}.png`), fullPage: width === 1366 });
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

const emails = () => page.locator('tbody tr strong').allTextContents();
const focusedText = () => page.evaluate(() => document.activeElement?.textContent ?? '');

describe('members page: tabs, sorting, search, totals', () => {
  it('is used with the keyboard alone: tabs by arrow keys, a sort, a search; totals on the tabs', async () => {
    await page.getByRole('region', { name: 'Members, page 1' }).waitFor();
    await expect.poll(() => page.getByRole('tab', { name: 'Members (31)' }).getAttribute('aria-selected')).toBe('true');
    await page.getByRole('tab', { name: 'Pending invitations (3)' }).waitFor();
    await expect.poll(() => page.locator('#members-total').textContent()).toBe('31 members.');
    expect(await emails()).not.toContain('inv1@wide.test');
    // Sorted by name: the five "Ann Lee" first (ties in account id order), the owner (no name) after the names.
    expect((await page.locator('tbody tr').first().textContent()) ?? '').toContain('Ann Lee');

    // Sort: email, Z to A, chosen from the keyboard.
    await page.getByLabel('Sort by').focus();
    for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowDown');
    await expect.poll(() => page.getByLabel('Sort by').inputValue()).toBe('email:desc');
    // "Name, Z to A", passed on the way and perhaps drawn, starts with the owner too (its email stands in for a name).
    await expect
      .poll(async () => (await emails()).slice(0, 3))
      .toEqual(['owner@wide.test', 'm29@wide.test', 'm28@wide.test']);
    await page.getByRole('button', { name: 'Next page →' }).focus();
    await page.keyboard.press('Enter');
    await expect
      .poll(emails)
      .toEqual(['m05@wide.test', 'm04@wide.test', 'm03@wide.test', 'm02@wide.test', 'm01@wide.test', 'm00@wide.test']);
    expect(await page.getByText('Page 2 of 2').count()).toBe(1);
    await shots('members-sorted');

    // Tabs: the arrow key moves to the pending invitations, which keep the sort.
    await page.getByRole('tab', { name: /^Members/ }).focus();
    await page.keyboard.press('ArrowRight');
    await expect.poll(focusedText).toBe('Pending invitations (3)');
    await page.getByRole('region', { name: 'Pending invitations, page 1' }).waitFor();
    await expect.poll(emails).toEqual(['inv3@wide.test', 'inv2@wide.test', 'inv1@wide.test']);
    expect(await page.locator('tbody').textContent()).toContain('pending invite');
    expect(await page.getByLabel('Status').isVisible()).toBe(false);
    await shots('members-invitations');

    // Search by name prefix, back on the members tab.
    await page.keyboard.press('Home');
    await expect.poll(focusedText).toBe('Members (31)');
    await page.getByRole('region', { name: 'Members, page 1' }).waitFor();
    await page.getByLabel('Name or email starts with').focus();
    await page.keyboard.type('carla ann');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#members-total').textContent()).toBe('5 members match.');
    expect(await emails()).toEqual([
      'm26@wide.test',
      'm20@wide.test',
      'm14@wide.test',
      'm08@wide.test',
      'm02@wide.test',
    ]);
    expect(pageErrors).toEqual([]);
  });
});

describe('CSV import page: a background job with a progress bar', () => {
  it('offers the example file, follows the job to its end with a progress bar, then shows each row', async () => {
    await page.goto(`${server.url}/console/import`);
    await page.locator('#page .loading').waitFor({ state: 'detached' });
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download an example file' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('orgsync-import-example.csv');
    expect(fs.readFileSync(await download.path(), 'utf8').split('\r\n')[0]).toBe('email,group membership');

    const lines = ['email,group membership'];
    for (let i = 0; i < 80; i++) lines.push(i === 40 ? 'not-an-address,' : `row${i}@wide.test,Sales`);
    await page
      .getByLabel('CSV file')
      .setInputFiles({ name: 'team.csv', mimeType: 'text/csv', buffer: Buffer.from(lines.join('\n')) });
    await page.getByRole('button', { name: 'Upload and invite' }).focus();
    await page.keyboard.press('Enter');
    // The bar appears with the job and grows to the total.
    const bar = page.getByRole('progressbar', { name: 'Import progress' });
    await bar.waitFor();
    expect(await bar.getAttribute('max')).toBe('80');
    await expect
      .poll(() => page.locator('#import-progress-text').textContent(), { timeout: 120_000 })
      .toBe('80 of 80 rows');
    await expect.poll(() => page.locator('#status').textContent()).toBe('team.csv: 79 invited, 1 skipped of 80 rows.');
    expect(await page.locator('tbody tr').count()).toBe(80);
    expect(await page.locator('tbody tr', { hasText: 'not-an-address' }).textContent()).toContain(
      'invalid email format',
    );
    await shots('import-progress-result');

    // The same file again invites nobody twice.
    await page.getByRole('button', { name: 'Upload and invite' }).click();
    await expect
      .poll(() => page.locator('#status').textContent(), { timeout: 120_000 })
      .toBe('team.csv: 0 invited, 80 skipped of 80 rows.');
    const [{ n }] = await ctx.sql<[{ n: number }]>`
      select count(*)::int as n from invitations where organization_id = ${org.organization.id} and email like 'row%'`;
    expect(n).toBe(79);
    expect(pageErrors).toEqual([]);
  }, 300_000);
});
