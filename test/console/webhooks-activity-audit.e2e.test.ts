import fs from 'node:fs';
import path from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { systemActor } from '../../src/core/actor.ts';
import { issueCredential } from '../../src/core/credentials.ts';
import { createGroup } from '../../src/core/groups.ts';
import { createReconciler } from '../../src/sync/index.ts';
import type { Reconciler } from '../../src/sync/reconciler.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { holdRequests, launchChromium, SCREENSHOT_DIR, type HeadlessChromium } from '../support/browser.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';

let ctx: AppContext;
let server: RunningServer;
let chromium: HeadlessChromium;
let page: Page;
let reconciler: Reconciler;
let org: Awaited<ReturnType<typeof createTestOrganization>>;
// Two real receivers: one that always fails (its circuit opens), one that fails, then recovers.
let failing: Awaited<ReturnType<typeof startWebhookReceiver>>;
let flaky: Awaited<ReturnType<typeof startWebhookReceiver>>;
const pageErrors: string[] = [];
const actor = systemActor('system', 'test');
const GROUPS = 60;

beforeAll(async () => {
  ctx = await createTestContext({
    HOST: '127.0.0.1',
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    DELIVERY_MAX_ATTEMPTS: '1',
    WEBHOOK_BREAKER_FAILURES: '2',
    WEBHOOK_BREAKER_COOLDOWN_MS: '3600000',
  });
  org = await createTestOrganization(ctx, 'hookco');
  for (let i = 1; i <= GROUPS; i++) {
    await createGroup(
      ctx.sql,
      { organizationId: org.organization.id, source: 'local', displayName: `Team ${String(i).padStart(2, '0')}` },
      actor,
    );
  }
  failing = await startWebhookReceiver();
  failing.setMode('fail');
  flaky = await startWebhookReceiver();
  flaky.setMode('fail');
  reconciler = createReconciler(ctx);
  await reconciler.events(); // the seeded groups' events, before any endpoint exists
  server = await startServer(ctx);
  chromium = await launchChromium();
  page = await chromium.context.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource'))
      pageErrors.push(message.text());
  });
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
});
afterAll(async () => {
  await chromium?.close();
  await server?.shutdown('test done');
  await failing?.close();
  await flaky?.close();
});

/**
 * Screenshots at 1366 and 390 px wide (the first screen, or the whole page); the narrow one must
 * not scroll sideways.
 */
async function shots(name: string, fullPage = false) {
  await page.setViewportSize({ width: 1366, height: 900 });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}-1366.png`), fullPage });
  await page.setViewportSize({ width: 390, height: 844 });
  expect(await page.evaluate(() => document.documentElement.scrollWidth), name).toBeLessThanOrEqual(390);
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}-390.png`), fullPage });
  await page.setViewportSize({ width: 1366, height: 900 });
}

async function openPage(name: string) {
  await page.goto(`${server.url}/console/${name}`);
  await page.locator('#page .loading').waitFor({ state: 'detached' });
}

/** Moves the keyboard focus forward with Tab until `target` has it (at most 40 presses). */
async function tabTo(target: Locator) {
  for (let i = 0; i < 40; i++) {
    if (await target.evaluate((el) => el === document.activeElement)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error('Tab never reached the element');
}

/** The row of an endpoint in the endpoints table. */
const endpointRow = (url: string) =>
  page.getByRole('region', { name: 'Webhook endpoints' }).locator('tbody tr').filter({ hasText: url });

const api = (method: string, route: string, body?: unknown) =>
  fetch(`${server.url}/api${route}`, {
    method,
    headers: { authorization: `Bearer ${org.adminKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

describe('sign-in', () => {
  it('signs in with the admin key by keyboard', async () => {
    await page.goto(`${server.url}/console/webhooks`);
    await page.waitForURL(/\/console\/sign-in\?/);
    const key = page.getByLabel('Admin API key', { exact: true });
    await tabTo(key);
    await page.keyboard.type(org.adminKey);
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/console\/webhooks$/);
    await page.getByRole('heading', { name: 'Endpoints' }).waitFor();
  });
});

describe('webhooks page', () => {
  it('adds endpoints by keyboard, shows the signing secret once', async () => {
    await openPage('webhooks');
    await tabTo(page.getByLabel('Endpoint URL'));
    await page.keyboard.type(failing.url);
    await page.keyboard.press('Tab');
    await page.keyboard.type('group.created');
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Endpoint added' });
    await dialog.waitFor();
    const secret = (await dialog.locator('#new-secret').textContent())!;
    expect(secret).toMatch(/^oswhsec_/);
    await shots('webhooks-secret');
    // Focus starts on "I have copied it"; Enter closes, and the secret is gone from the page.
    await page.keyboard.press('Enter');
    // Closed is not yet removed: the dialog leaves the page on its (asynchronous) close event.
    await expect.poll(() => page.content()).not.toContain(secret);
    const [row] = await ctx.sql`select url, events, secret_sealed from webhook_endpoints where url = ${failing.url}`;
    expect(row).toMatchObject({ url: failing.url, events: ['group.created'] });
    expect(row!.secretSealed).not.toContain(secret);

    await page.getByLabel('Endpoint URL').fill(flaky.url);
    await page.getByLabel('Events').fill('group.updated, group.deleted');
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    await page
      .getByRole('dialog', { name: 'Endpoint added' })
      .getByRole('button', { name: 'I have copied it' })
      .click();
    await expect.poll(() => endpointRow(flaky.url).count()).toBe(1);

    // A bad URL is refused inside the form, and nothing is added.
    await page.getByLabel('Endpoint URL').fill('ftp://nope.example');
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    await page.locator('form [role="alert"]').filter({ hasText: /http/i }).waitFor();
    expect(await ctx.sql`select 1 from webhook_endpoints`).toHaveLength(2);
  });

  it("shows each endpoint's deliveries with the response code, its circuit breaker, and retries a dead letter", async () => {
    const [team1] = await ctx.sql<{ id: string }[]>`
      select id from groups where organization_id = ${org.organization.id} order by display_name limit 1`;
    // Two failures open the failing endpoint's circuit; one failure leaves the flaky one's closed.
    await api('POST', '/groups', { displayName: 'Hooked 1' });
    await api('POST', '/groups', { displayName: 'Hooked 2' });
    await api('PATCH', `/groups/${team1!.id}`, { displayName: 'Team 01 renamed' });
    await reconciler.events();
    expect(failing.received.map((r) => r.status)).toEqual([500, 500]);
    expect(flaky.received.map((r) => r.status)).toEqual([500]);

    await openPage('webhooks');
    const failingRow = endpointRow(failing.url);
    const flakyRow = endpointRow(flaky.url);
    await expect.poll(() => failingRow.textContent()).toMatch(/open until .* \(2 failures\)/);
    await expect.poll(() => flakyRow.textContent()).toContain('closed (1 failure in a row)');

    // By keyboard: Enter on "Deliveries" lists them, newest first, with the receiver's answer.
    await tabTo(page.getByRole('button', { name: `Show deliveries to ${flaky.url}` }));
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: `Deliveries to ${flaky.url}` }).waitFor();
    const deliveries = page.getByRole('region', { name: 'Recent deliveries', exact: true });
    const deliveryRow = deliveries.locator('tbody tr');
    await expect.poll(() => deliveryRow.count()).toBe(1);
    expect(await deliveryRow.textContent()).toMatch(/group\.updated.*dead.*1.*500.*webhook answered HTTP 500/);
    const dead = page.getByRole('region', { name: 'Dead letters, oldest first' });
    await expect.poll(() => dead.locator('tbody tr').count()).toBe(3);
    await shots('webhooks', true);

    // Retry the flaky endpoint's dead letter; the receiver now answers 204.
    flaky.setMode('ok');
    const [delivery] = await ctx.sql<{ id: string }[]>`
      select id from deliveries where target = (select id::text from webhook_endpoints where url = ${flaky.url})`;
    await tabTo(dead.getByRole('button', { name: `Retry delivery ${delivery!.id}` }));
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#status').textContent()).toBe('1 delivery queued again.');
    await expect.poll(() => dead.locator('tbody tr').count()).toBe(2);
    // The status comes before the retry draws the lists again; the deliveries' redraw, if still
    // on its way, would land over the one "Show deliveries" below asks for.
    await expect.poll(() => deliveryRow.textContent()).toMatch(/pending/);
    await reconciler.events();
    expect(flaky.delivered()).toHaveLength(1);

    await page.getByRole('button', { name: `Show deliveries to ${flaky.url}` }).click();
    await expect.poll(() => deliveryRow.textContent()).toMatch(/delivered.*204/);
    await deliveries.getByRole('button', { name: `Attempts of delivery ${delivery!.id}` }).click();
    const attempts = page.getByRole('dialog', { name: `Attempts of delivery ${delivery!.id}` });
    await expect
      .poll(() => attempts.locator('tbody tr').allTextContents())
      .toEqual([expect.stringMatching(/^1.*500webhook answered HTTP 500$/), expect.stringMatching(/^2.*204—$/)]);
    await shots('webhooks-attempts');
    await page.keyboard.press('Escape');
    await attempts.waitFor({ state: 'detached' });
    expect(pageErrors).toEqual([]);
  });

  it('disables, enables and deletes an endpoint by keyboard, with a confirmation', async () => {
    await openPage('webhooks');
    const enabled = async () =>
      (await ctx.sql<{ enabled: boolean }[]>`select enabled from webhook_endpoints where url = ${failing.url}`)[0]
        ?.enabled;
    await tabTo(page.getByRole('button', { name: `Disable ${failing.url}` }));
    await page.keyboard.press('Enter');
    await expect.poll(enabled).toBe(false);
    await expect.poll(() => page.locator('#status').textContent()).toBe(`${failing.url} disabled.`);
    await expect.poll(() => endpointRow(failing.url).textContent()).toContain('disabled');
    await page.getByRole('button', { name: `Enable ${failing.url}` }).click();
    await expect.poll(enabled).toBe(true);
    // The table is drawn again after the change is saved; the status says it has been. Tabbing
    // before then could focus a button that the redraw removes, and Enter would then do nothing.
    await expect.poll(() => page.locator('#status').textContent()).toBe(`${failing.url} enabled.`);

    await tabTo(page.getByRole('button', { name: `Delete ${failing.url}` }));
    await page.keyboard.press('Enter');
    const confirm = page.getByRole('alertdialog', { name: 'Delete endpoint' });
    await confirm.waitFor();
    // Focus starts on Cancel: Escape changes nothing.
    await page.keyboard.press('Escape');
    await confirm.waitFor({ state: 'detached' });
    expect(await enabled()).toBe(true);
    await page.keyboard.press('Enter'); // focus went back to Delete
    await confirm.waitFor();
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await expect.poll(enabled).toBeUndefined();
    await expect.poll(() => endpointRow(failing.url).count()).toBe(0);
    expect(pageErrors).toEqual([]);
  });
});

describe('SCIM activity page', () => {
  it('shows the request log per token, newest first, with error detail, paged by keyboard', async () => {
    const scim = (route: string) =>
      fetch(`${server.url}/scim/v2${route}`, { headers: { authorization: `Bearer ${org.scimToken}` } });
    for (let i = 0; i < 55; i++) expect((await scim('/Users?count=1')).status).toBe(200);
    expect((await scim('/Users?filter=userName%20eq')).status).toBe(400);
    expect((await scim('/Users/00000000-0000-0000-0000-000000000000')).status).toBe(404);
    await issueCredential(
      ctx.sql,
      ctx.config.serverSecret,
      { organizationId: org.organization.id, kind: 'scim', name: 'unused' },
      actor,
    );
    // The log is written in batches off the request path.
    await expect.poll(async () => (await ctx.sql`select count(*)::int as n from scim_requests`)[0]!.n).toBe(57);

    await openPage('scim-activity');
    const log = page.getByRole('region', { name: 'SCIM requests, page 1' });
    await log.waitFor();
    const rows = log.locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(50);
    expect(await rows.nth(0).textContent()).toMatch(/GET\/scim\/v2\/Users\/0{8}-.*404.*not found/);
    expect(await rows.nth(1).textContent()).toMatch(/GET.*filter=userName%20eq.*400.*invalidFilter: /);
    expect(await rows.nth(2).textContent()).toMatch(/GET.*200—/);
    await shots('scim-activity');

    await tabTo(page.getByRole('button', { name: 'Older →' }));
    await page.keyboard.press('Enter');
    const second = page.getByRole('region', { name: 'SCIM requests, page 2' });
    await second.waitFor();
    await expect.poll(() => second.locator('tbody tr').count()).toBe(7);
    await page.getByRole('button', { name: '← Newer' }).click();
    await log.waitFor();

    // Another token: its own (empty) log, chosen with the keyboard.
    await tabTo(page.getByLabel('SCIM token'));
    await page.keyboard.press('ArrowDown');
    await page.getByText('No requests with this token in the last 30 days.').waitFor();
    expect(page.url()).toMatch(/\?token=/);
    expect(pageErrors).toEqual([]);
  });
});

describe('audit log page', () => {
  it('names targets beside ids and keeps action names whole', async () => {
    await openPage('audit');
    const rows = page.locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(50);
    const renamed = rows.filter({ hasText: 'group.updated' }).first();
    expect(await renamed.textContent()).toContain('Team 01 renamed');
    const webhookRow = rows.filter({ hasText: 'webhook.deleted' }).first();
    expect(await webhookRow.textContent()).toContain(failing.url);
    await shots('audit');
    // At 390 px an action name such as member.role_changed stays on one line.
    await page.setViewportSize({ width: 390, height: 844 });
    const lines = await page
      .locator('code.action')
      .evaluateAll((codes) =>
        codes.map((c) => [c.textContent, c.getClientRects().length, c.getBoundingClientRect().height]),
      );
    const lineHeight = Math.min(...lines.map(([, , height]) => Number(height)));
    expect(lines.filter(([, rects, height]) => rects !== 1 || Number(height) > lineHeight * 1.5)).toEqual([]);
    await page.setViewportSize({ width: 1366, height: 900 });
  });

  it('keeps the filters while paging, and exports the filtered range as CSV and JSON Lines', async () => {
    await openPage('audit');
    // The unfiltered first page, drawn late, would replace the filtered one (and no rows pass the check below).
    await page.getByRole('region', { name: 'Audit log entries' }).waitFor();
    await tabTo(page.getByLabel('Action'));
    await page.keyboard.type('group.created');
    await page.keyboard.press('Enter');
    const actions = () => page.locator('tbody tr td:nth-child(3)').allTextContents();
    await expect.poll(async () => (await actions()).every((a) => a === 'group.created')).toBe(true);
    expect(await actions()).toHaveLength(50);
    expect(page.url()).toMatch(/\?action=group\.created$/);
    // Editing a field without choosing Filter does not change what the next page shows.
    await page.getByLabel('Action').fill('member');
    await page.getByRole('button', { name: 'Older →' }).click();
    await expect.poll(() => page.getByText('Page 2').count()).toBe(1);
    await expect.poll(actions).toHaveLength(GROUPS + 2 - 50);
    expect((await actions()).every((a) => a === 'group.created')).toBe(true);
    await page.getByLabel('Action').fill('group.created');

    const total = GROUPS + 2;
    const download = async (name: string) => {
      const started = page.waitForEvent('download');
      await tabTo(page.getByRole('button', { name }));
      await page.keyboard.press('Enter');
      const file = await started;
      return { name: file.suggestedFilename(), text: fs.readFileSync(await file.path(), 'utf8') };
    };
    const csv = await download('Export CSV');
    expect(csv.name).toMatch(/^audit-.*\.csv$/);
    const csvLines = csv.text.trimEnd().split('\r\n');
    expect(csvLines[0]).toMatch(/^id,at,channel,actorType,/);
    expect(csvLines).toHaveLength(total + 1);
    expect(csvLines.slice(1).every((l) => l.includes(',group.created,group,'))).toBe(true);
    expect(csv.text).toContain('Hooked 2');

    const jsonl = await download('Export JSON Lines');
    expect(jsonl.name).toMatch(/^audit-.*\.jsonl$/);
    const entries = jsonl.text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string; targetName: string });
    expect(entries).toHaveLength(total);
    expect(new Set(entries.map((e) => e.action))).toEqual(new Set(['group.created']));
    expect(entries[0]!.targetName).toBe('Hooked 2');
    await expect.poll(() => page.locator('#status').textContent()).toMatch(/^Exported audit-.*\.jsonl\.$/);
    expect(pageErrors).toEqual([]);
  });

  /** Opens the page with its first (unfiltered) page held, and filters: the filtered page is drawn. */
  async function filteredWhileFirstPageHeld() {
    const unfiltered = /\/api\/audit\?limit=/;
    const firstPage = await holdRequests(page, unfiltered);
    await page.goto(`${server.url}/console/audit`);
    await page.getByLabel('Action').fill('group.created');
    await page.getByRole('button', { name: 'Filter' }).click();
    const actions = () => page.locator('tbody tr td:nth-child(3)').allTextContents();
    await expect.poll(actions).toHaveLength(50);
    return { unfiltered, firstPage, actions };
  }

  it('draws only the latest answer: the first page, answered after a filter was applied, does not replace it', async () => {
    const { unfiltered, firstPage, actions } = await filteredWhileFirstPageHeld();
    try {
      // From here on, note every action the page draws.
      await page.evaluate(() => {
        const drawn: string[] = [];
        Object.assign(window, { drawn });
        new MutationObserver(() =>
          drawn.push(...[...document.querySelectorAll('tbody tr td:nth-child(3)')].map((td) => td.textContent ?? '')),
        ).observe(document.body, { childList: true, subtree: true });
      });
      const answered = page.waitForEvent('requestfinished', (request) => unfiltered.test(request.url()));
      firstPage.release();
      await answered;
      // Page 2 is asked for once the late answer is in, so once page 2 is drawn that answer has been handled.
      await page.getByRole('button', { name: 'Older →' }).click();
      await expect.poll(actions).toHaveLength(GROUPS + 2 - 50);
      const drawn = await page.evaluate(() => (window as unknown as { drawn: string[] }).drawn);
      expect(drawn.length).toBeGreaterThan(0);
      expect(new Set(drawn)).toEqual(new Set(['group.created']));
    } finally {
      await firstPage.stop();
    }
    expect(pageErrors).toEqual([]);
  });

  it('shows no error of a superseded load: the first page failing after a filter was applied', async () => {
    const { unfiltered, firstPage, actions } = await filteredWhileFirstPageHeld();
    try {
      // From here on, note whether the page's error line ever shows.
      await page.evaluate(() => {
        const error = document.querySelector('#error')!;
        const seen = { shown: false };
        Object.assign(window, { seen });
        new MutationObserver(() => (seen.shown ||= !(error as HTMLElement).hidden)).observe(error, {
          attributes: true,
          childList: true,
        });
      });
      const failed = page.waitForEvent('requestfailed', (request) => unfiltered.test(request.url()));
      firstPage.fail();
      await failed;
      // Page 2 is asked for once the failure is in, so once page 2 is drawn that failure has been handled.
      await page.getByRole('button', { name: 'Older →' }).click();
      await expect.poll(actions).toHaveLength(GROUPS + 2 - 50);
      expect(await page.evaluate(() => (window as unknown as { seen: { shown: boolean } }).seen.shown)).toBe(false);
      expect(await page.locator('#error').isVisible()).toBe(false);
    } finally {
      await firstPage.stop();
    }
    expect(pageErrors).toEqual([]);
  });
});
