import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor } from '../../src/core/actor.ts';
import { joinOrganization } from '../../src/core/memberships.ts';
import { createSession } from '../../src/core/sessions.ts';
import { SESSION_COOKIE } from '../../src/http/session-cookie.ts';
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

function watch(p: Page) {
  p.on('pageerror', (error) => pageErrors.push(error.message));
  p.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource'))
      pageErrors.push(message.text());
  });
}

beforeAll(async () => {
  ctx = await createTestContext({ HOST: '127.0.0.1' });
  org = await createTestOrganization(ctx, 'acme');
  server = await startServer(ctx);
  chromium = await launchChromium();
  await chromium.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  page = await chromium.context.newPage();
  watch(page);
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  // Signs in with the owner's admin API key, as the console's first setup does.
  await page.goto(`${server.url}/console/sign-in`);
  await page.getByLabel('Admin API key', { exact: true }).fill(org.adminKey);
  await page.getByRole('button', { name: 'Sign in with the key' }).click();
  await page.waitForURL(/\/console\/members$/);
});
afterAll(async () => {
  await chromium?.close();
  await server?.shutdown('test done');
});

/**
 * Screenshots at 1366 px and 390 px wide (`<name>-1366.png`, `<name>-390.png`); at 390 px nothing
 * may stick out sideways, the page nor an open dialog.
 */
async function shot(name: string, p: Page = page) {
  await p.setViewportSize({ width: 1366, height: 900 });
  await p.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}-1366.png`), fullPage: true });
  await p.setViewportSize({ width: 390, height: 844 });
  expect(await p.evaluate(() => document.documentElement.scrollWidth), name).toBeLessThanOrEqual(390);
  const dialogRight = await p.evaluate(() => document.querySelector('dialog')?.getBoundingClientRect().right ?? 0);
  expect(dialogRight, name).toBeLessThanOrEqual(390);
  await p.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}-390.png`), fullPage: true });
  await p.setViewportSize({ width: 1366, height: 900 });
}

async function openPage(name: string, p: Page = page) {
  await p.goto(`${server.url}/console/${name}`);
  await p.locator('#page .loading').waitFor({ state: 'detached' });
  await p.locator('#page:not([aria-busy])').waitFor();
}

/** What tabTo looks for: a field by the start of its label, or a button by its text. */
type Target = { label: string } | { button: string };

/** Presses Tab until the focused element is the target (keyboard-only use). */
async function tabTo(target: Target, p: Page = page) {
  for (let i = 0; i < 60; i++) {
    await p.keyboard.press('Tab');
    const found = await p.evaluate((t) => {
      const el = document.activeElement as HTMLInputElement | null;
      if (!el) return false;
      if ('label' in t) return el.labels?.[0]?.textContent?.trim().startsWith(t.label) === true;
      return el.tagName === 'BUTTON' && el.textContent === t.button;
    }, target);
    if (found) return;
  }
  throw new Error(`Tab never reached ${JSON.stringify(target)}`);
}
const labelled = (label: string): Target => ({ label });
const button = (text: string): Target => ({ button: text });

const statusText = () => page.locator('#status').textContent();
const organization = async () =>
  (
    await ctx.sql<{ name: string; inviteTtlHours: number; defaultRole: string; singleOrganization: boolean }[]>`
    select name, invite_ttl_hours, default_role, single_organization from organizations where id = ${org.organization.id}`
  )[0]!;

describe('settings', { timeout: 90_000 }, () => {
  it('changes name, invitation lifetime, default role and a switch by keyboard; errors show beside their field', async () => {
    await openPage('settings');
    await tabTo(labelled('Organization name'));
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.press('Delete');
    await page.keyboard.press('Tab');
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type('0');
    await page.keyboard.press('Enter');
    // The API's refusals, each beside its field; the focus goes to the first.
    const nameField = page.getByLabel('Organization name');
    const nameError = page.locator('.field', { has: nameField }).locator('.field-error');
    const ttlError = page
      .locator('.field', { has: page.getByLabel('Invitation lifetime (hours)') })
      .locator('.field-error');
    await expect.poll(() => nameError.textContent()).toBe('Must not be empty.');
    expect(await ttlError.textContent()).toBe('Must be at least 1 hour.');
    expect(await nameField.getAttribute('aria-invalid')).toBe('true');
    expect(await page.evaluate(() => (document.activeElement as HTMLInputElement).name)).toBe('name');
    await shot('settings-errors');
    expect(await organization()).toMatchObject({ name: 'acme', inviteTtlHours: 72 });

    await page.keyboard.type('Acme Corporation');
    await page.keyboard.press('Enter');
    // The answer moves the focus to the field still refused.
    await expect
      .poll(() => page.evaluate(() => (document.activeElement as HTMLInputElement).name))
      .toBe('inviteTtlHours');
    expect(await ttlError.textContent()).toBe('Must be at least 1 hour.');
    expect(await nameError.isHidden()).toBe(true);
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type('48');
    await page.keyboard.press('Tab'); // the default role
    await page.keyboard.press('End'); // the last role in the list: Viewer
    await page.keyboard.press('Tab'); // single organization
    await page.keyboard.press('Space');
    await page.keyboard.press('Enter');
    await expect.poll(statusText).toBe('Settings saved.');
    expect(await ttlError.isHidden()).toBe(true);
    expect(await organization()).toEqual({
      name: 'Acme Corporation',
      inviteTtlHours: 48,
      defaultRole: 'viewer',
      singleOrganization: true,
    });
    expect(await page.locator('#org-name').textContent()).toBe('Acme Corporation');
    const [audit] = await ctx.sql`select details from audit_log
      where organization_id = ${org.organization.id} and action = 'organization.updated'`;
    expect(audit!.details).toEqual({
      name: 'Acme Corporation',
      inviteTtlHours: 48,
      defaultRole: 'viewer',
      singleOrganization: true,
    });
    await shot('settings');
    // Set back for the tests below.
    await page.locator('#setting-singleOrganization').uncheck();
    await page.getByRole('button', { name: 'Save settings' }).click();
    await expect.poll(async () => (await organization()).singleOrganization).toBe(false);
  });
});

describe('roles', { timeout: 90_000 }, () => {
  it('creates a custom role by keyboard, with the key’s error beside it', async () => {
    await openPage('roles');
    await page.getByRole('region', { name: 'Roles' }).waitFor();
    expect(await page.locator('tbody tr').count()).toBe(5); // the built-in roles
    await tabTo(button('New role'));
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'New role' });
    await dialog.waitFor();
    expect(await page.evaluate(() => (document.activeElement as HTMLInputElement).name)).toBe('key');
    await page.keyboard.type('Support Desk');
    await page.keyboard.press('Tab');
    await page.keyboard.type('Support desk');
    await page.keyboard.press('Tab'); // the first permission: members:manage
    await page.keyboard.press('Tab'); // members:view
    await page.keyboard.press('Space');
    await tabTo(button('Create role'));
    await page.keyboard.press('Enter');
    const keyError = dialog.locator('.field', { has: page.getByLabel('Key', { exact: true }) }).locator('.field-error');
    await expect.poll(() => keyError.textContent()).toBe('Lowercase letters, digits, _ or -, starting with a letter.');
    expect(await page.evaluate(() => (document.activeElement as HTMLInputElement).name)).toBe('key');
    await shot('role-dialog');
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type('support');
    await page.keyboard.press('Enter');
    await expect.poll(statusText).toBe('Role Support desk created.');
    expect(await dialog.count()).toBe(0);
    const [role] = await ctx.sql`select name, permissions from roles where key = 'support'`;
    expect(role).toEqual({ name: 'Support desk', permissions: ['members:view'] });
    // Focus went back to the button that opened the dialog.
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent)).toBe('New role');
  });

  it('edits a custom role’s permissions', async () => {
    await openPage('roles');
    await page.getByRole('button', { name: 'Edit the role Support desk' }).click();
    const dialog = page.getByRole('dialog', { name: 'Edit role Support desk' });
    await dialog.getByLabel('Manage members (invite, change roles, remove)').check();
    await dialog.getByRole('button', { name: 'Save role' }).click();
    await expect.poll(statusText).toBe('Role Support desk saved.');
    const [role] = await ctx.sql`select permissions from roles where key = 'support'`;
    expect(role!.permissions).toEqual(['members:manage', 'members:view']);
    expect(await page.locator('tbody tr', { hasText: 'Support desk' }).textContent()).toContain(
      'members:manage, members:view',
    );
    await shot('roles');
  });

  it('deleting a role in use is refused, says by whom, and reassigns them to the chosen role', async () => {
    const person = await ensureAccount(ctx.sql, { email: 'helper@acme.test' });
    await joinOrganization(
      ctx.sql,
      { organizationId: org.organization.id, accountId: person.id, source: 'admin', roles: ['support'] },
      actor,
    );
    await openPage('roles');
    await page.getByRole('button', { name: 'Delete the role Support desk' }).click();
    await page.getByRole('alertdialog', { name: 'Delete role' }).getByRole('button', { name: 'Delete role' }).click();
    const dialog = page.getByRole('dialog', { name: 'Role Support desk is in use' });
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain('Support desk is still in use: 1 member. It was not deleted.');
    expect(await page.evaluate(() => (document.activeElement as HTMLSelectElement).name)).toBe('reassignTo');
    await shot('role-in-use');
    await page.keyboard.press('End'); // Viewer
    await dialog.getByRole('button', { name: 'Reassign and delete' }).focus();
    await page.keyboard.press('Enter');
    await expect.poll(statusText).toBe('Role Support desk deleted; Viewer replaces it for 1 member.');
    expect(await ctx.sql`select 1 from roles where key = 'support'`).toHaveLength(0);
    const [m] = await ctx.sql`select roles from memberships where account_id = ${person.id}`;
    expect(m!.roles).toEqual(['viewer']);

    // An unused role goes at once.
    await ctx.sql`insert into roles (organization_id, key, name, permissions) values (${org.organization.id}, 'temp', 'Temp', '{}')`;
    await openPage('roles');
    await page.getByRole('button', { name: 'Delete the role Temp' }).click();
    await page.getByRole('alertdialog', { name: 'Delete role' }).getByRole('button', { name: 'Delete role' }).click();
    await expect.poll(statusText).toBe('Role Temp deleted; nobody used it.');
  });
});

describe('API keys', { timeout: 90_000 }, () => {
  it('creates a key by keyboard, shows its secret once with a copy button, lists and revokes it', async () => {
    await openPage('api-keys');
    const table = page.getByRole('region', { name: 'API keys' });
    await table.waitFor();
    expect(await table.locator('tbody tr', { hasText: 'setup' }).textContent()).toContain('this session');
    await tabTo(labelled('Key name'));
    await page.keyboard.press('Enter'); // no name: refused beside the field
    const nameError = page.locator('.field', { has: page.getByLabel('Key name') }).locator('.field-error');
    await expect.poll(() => nameError.textContent()).toBe('Must not be empty.');
    await page.keyboard.type('deploy');
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'API key created' });
    await dialog.waitFor();
    const secret = (await dialog.locator('code').textContent())!;
    expect(secret).toMatch(/^oskey_/);
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('I have copied it');
    await dialog.getByRole('button', { name: 'Copy' }).click();
    await expect.poll(statusText).toBe('API key copied.');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await shot('api-key-created');
    await dialog.getByRole('button', { name: 'I have copied it' }).focus();
    await page.keyboard.press('Enter');
    // The dialog's close event (which removes it) comes a task after it hides.
    await expect.poll(() => page.content()).not.toContain(secret);

    // The key works, with the role it was given (admin, checked by default).
    const call = () => fetch(`${server.url}/api/organization`, { headers: { authorization: `Bearer ${secret}` } });
    const me = (await (await call()).json()) as { you: { actor: string; permissions: string[] } };
    expect(me.you.actor).toBe('deploy');
    expect(me.you.permissions).not.toContain('billing:manage');
    await openPage('api-keys');
    const row = page.locator('tbody tr', { hasText: 'deploy' });
    expect(await row.locator('td[data-label="Created by"]').textContent()).toBe('API key setup');
    expect(await row.locator('td[data-label="Last used"]').textContent()).not.toBe('never');
    await shot('api-keys');

    await page.getByRole('button', { name: 'Revoke the key deploy' }).click();
    await page.getByRole('alertdialog', { name: 'Revoke API key' }).getByRole('button', { name: 'Revoke key' }).click();
    await expect.poll(statusText).toBe('API key deploy revoked.');
    expect((await call()).status).toBe(401);
    expect(await row.locator('td[data-label="Status"]').textContent()).toContain('revoked');
  });

  it('offers only roles the caller holds', async () => {
    const admin = await fetch(`${server.url}/api/api-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${org.adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'an-admin', roles: ['admin'] }),
    });
    const { secret } = (await admin.json()) as { secret: string };
    const tab = await chromium.context.newPage();
    watch(tab);
    try {
      await tab.goto(`${server.url}/console/sign-in`);
      await tab.getByLabel('Admin API key', { exact: true }).fill(secret);
      await tab.getByRole('button', { name: 'Sign in with the key' }).click();
      await tab.waitForURL(/\/console\/members$/);
      await openPage('api-keys', tab);
      const roles = tab.getByRole('group', { name: 'Roles' });
      await roles.waitFor();
      expect(await roles.getByLabel('Admin', { exact: true }).count()).toBe(1);
      expect(await roles.getByLabel('Owner', { exact: true }).count()).toBe(0);
      expect(await roles.getByLabel('Billing', { exact: true }).count()).toBe(0);
    } finally {
      await tab.close();
    }
  });
});

describe('leave organization', { timeout: 90_000 }, () => {
  async function signedInAs(email: string, roles: string[]) {
    const person = await ensureAccount(ctx.sql, { email });
    await joinOrganization(
      ctx.sql,
      { organizationId: org.organization.id, accountId: person.id, source: 'sso', roles },
      actor,
    );
    const { secret } = await createSession(ctx.sql, ctx.config.serverSecret, {
      organizationId: org.organization.id,
      accountId: person.id,
      via: 'saml',
    });
    await chromium.context.addCookies([{ name: SESSION_COOKIE, value: secret, url: server.url }]);
    const tab = await chromium.context.newPage(); // no admin key in this tab's sessionStorage
    watch(tab);
    return { tab, person };
  }

  it('a member leaves after confirming, by keyboard', async () => {
    const { tab, person } = await signedInAs('leaver@acme.test', ['member']);
    try {
      await openPage('settings', tab);
      await tab.getByText('You need the permission org:manage to change these settings.').waitFor();
      await tabTo(button('Leave organization…'), tab);
      await tab.keyboard.press('Enter');
      const confirm = tab.getByRole('alertdialog', { name: 'Leave organization' });
      await confirm.waitFor();
      expect(await tab.evaluate(() => document.activeElement?.textContent)).toBe('Cancel');
      expect(await confirm.textContent()).toContain('Leave Acme Corporation? You lose access at once');
      await shot('leave-confirm', tab);
      await tab.keyboard.press('Tab');
      await tab.keyboard.press('Enter');
      await tab.waitForURL(/\/console\/sign-in\?left=1$/);
      await expect
        .poll(() => tab.locator('#status').textContent())
        .toBe('You have left the organization and are signed out.');
      const [m] = await ctx.sql`select status from memberships where account_id = ${person.id}`;
      expect(m!.status).toBe('removed');
      const [audit] =
        await ctx.sql`select actor_name from audit_log where action = 'member.left' and target_id = ${person.id}`;
      expect(audit!.actorName).toBe('leaver@acme.test');
    } finally {
      await tab.close();
      await chromium.context.clearCookies();
    }
  });

  it('the last owner cannot leave, and is told why', async () => {
    const owner = org.owner.id;
    const { secret } = await createSession(ctx.sql, ctx.config.serverSecret, {
      organizationId: org.organization.id,
      accountId: owner,
      via: 'saml',
    });
    await chromium.context.addCookies([{ name: SESSION_COOKIE, value: secret, url: server.url }]);
    const tab = await chromium.context.newPage();
    watch(tab);
    try {
      await openPage('settings', tab);
      await tab.getByRole('button', { name: 'Leave organization…' }).click();
      await tab
        .getByRole('alertdialog', { name: 'Leave organization' })
        .getByRole('button', { name: 'Leave organization' })
        .click();
      const alert = tab.locator('section[aria-labelledby="leave-title"] [role="alert"]');
      await expect
        .poll(() => alert.textContent())
        .toBe('You are the last owner of this organization: make another member an owner before you leave.');
      await shot('leave-last-owner', tab);
      const [m] = await ctx.sql`select status from memberships where account_id = ${owner}`;
      expect(m!.status).toBe('active');
    } finally {
      await tab.close();
      await chromium.context.clearCookies();
    }
  });

  it('with an admin API key there is nobody to leave: the page says so', async () => {
    await openPage('settings');
    await page.getByText('You are using the console with an admin API key').waitFor();
    expect(await page.getByRole('button', { name: 'Leave organization…' }).count()).toBe(0);
  });
});

describe('the new pages', { timeout: 90_000 }, () => {
  it('label every field and start with a skip link', async () => {
    for (const name of ['settings', 'roles', 'api-keys']) {
      await openPage(name);
      const unlabelled = await page.evaluate(() =>
        [...document.querySelectorAll('input, select, textarea')]
          .filter((el) => !(el as HTMLInputElement).labels?.length && !el.getAttribute('aria-label'))
          .map((el) => el.outerHTML),
      );
      expect(unlabelled, name).toEqual([]);
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.textContent), name).toBe('Skip to content');
      expect(await page.locator('nav a[aria-current="page"]').getAttribute('href'), name).toBe(`/console/${name}`);
    }
    expect(pageErrors).toEqual([]);
  });
});
