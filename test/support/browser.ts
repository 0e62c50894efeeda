import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page, type Route } from 'playwright-core';
import { inject } from 'vitest';

/** The Chromium the global setup found (test/support/chromium.ts); playwright-core drives it. */
export const CHROMIUM = inject('chromium');

export const SCREENSHOT_DIR = path.resolve('test-artifacts/screenshots');

export interface HeadlessChromium {
  context: BrowserContext;
  close(): Promise<void>;
}

/** A headless Chromium with a new, empty profile that is deleted again on close. */
export async function launchChromium(): Promise<HeadlessChromium> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'orgsync-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM.executablePath,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    args: [
      ...CHROMIUM.args,
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  // A step that waits for an element that never comes fails naming its locator, well before the
  // test's own timeout (30 s) would end it without saying which step it was on.
  context.setDefaultTimeout(15_000);
  return {
    context,
    close: async () => {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Holds the page's requests to `url` until `release()` (or `fail()`, which answers them with a
 * network failure), so that their answers arrive late (after what the test does meanwhile);
 * `stop()` ends the holding.
 */
export async function holdRequests(page: Page, url: RegExp) {
  let answer!: (how: (route: Route) => Promise<void>) => void;
  const held = new Promise<(route: Route) => Promise<void>>((resolve) => (answer = resolve));
  await page.route(url, async (route) => (await held)(route));
  return {
    release: () => answer((route) => route.continue()),
    fail: () => answer((route) => route.abort('connectionfailed')),
    stop: () => page.unroute(url),
  };
}
