import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { verifyCredential } from '../../src/core/credentials.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor } from '../../src/core/actor.ts';
import { changeGroupMembers, createGroup, type Group } from '../../src/core/groups.ts';
import { joinOrganization } from '../../src/core/memberships.ts';
import { createSession, resolveSession } from '../../src/core/sessions.ts';
import { SESSION_COOKIE } from '../../src/http/session-cookie.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { holdRequests, launchChromium, SCREENSHOT_DIR, type HeadlessChromium } from '../support/browser.ts';
import { TEST_PUBLIC_URL, createTestContext, createTestOrganization } from '../support/context.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { makeIdpKeys } from '../saml/support/idp.ts';

let ctx: AppContext;
let server: RunningServer;
let chromium: HeadlessChromium;
let page: Page;
let org: Awaited<ReturnType<typeof createTestOrganization>>;
let sales: Group;
let dns: TestDnsServer;
const pageErrors: string[] = [];
const actor = systemActor('system', 'test');

beforeAll(async () => {
  dns = await startDnsServer();
  ctx = await createTestContext({
    HOST: '127.0.0.1',
    DNS_SERVERS: dns.server,
    // The SAML test serves IdP metadata on 127.0.0.1.
    SAML_METADATA_ALLOW_PRIVATE_NETWORKS: 'true',
  });
  org = await createTestOrganization(ctx, 'acme');
  for (let i = 1; i <= 30; i++) {
    const account = await ensureAccount(ctx.sql, {
      email: `p${String(i).padStart(2, '0')}@acme.test`,
      givenName: 'Person',
      familyName: `${i}`,
    });
    await joinOrganization(
      ctx.sql,
      // p01 and p09 were provisioned by the IdP (SCIM); the rest joined through the console or SSO.
      {
        organizationId: org.organization.id,
        accountId: account.id,
        source: i === 1 || i === 9 ? 'scim' : i % 3 ? 'admin' : 'sso',
      },
      actor,
    );
  }
  const person = async (n: number) =>
    (await ctx.sql<{ id: string }[]>`select id from accounts where email = ${`p0${n}@acme.test`}`)[0]!.id;
  const engineering = await createGroup(
    ctx.sql,
    { organizationId: org.organization.id, source: 'scim', displayName: 'Engineering' },
    actor,
  );
  await changeGroupMembers(
    ctx.sql,
    org.organization.id,
    engineering.id,
    { add: [await person(1), await person(2), await person(3)] },
    actor,
  );
  const samlEngineering = await createGroup(
    ctx.sql,
    { organizationId: org.organization.id, source: 'saml', displayName: 'engineering' },
    actor,
  );
  await changeGroupMembers(
    ctx.sql,
    org.organization.id,
    samlEngineering.id,
    { add: [await person(3), await person(4)] },
    actor,
  );
  sales = await createGroup(
    ctx.sql,
    { organizationId: org.organization.id, source: 'local', displayName: 'Sales' },
    actor,
  );
  server = await startServer(ctx);
  chromium = await launchChromium();
  page = await chromium.context.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.message));
  // Console errors other than the API's expected refusals (a CSP violation, say) fail the run.
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource'))
      pageErrors.push(message.text());
  });
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
});
afterAll(async () => {
  await chromium?.close();
  await server?.shutdown('test done');
  await dns?.close();
});

/** A screenshot for reviewers (git-ignored); the whole page, or only the first screen. */
async function shot(name: string, fullPage = true) {
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage });
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

/** Rows of the database, for checking what the pages really changed. */
const membership = async (email: string) =>
  (
    await ctx.sql<{ status: string; roles: string[] }[]>`
    select m.status, m.roles from memberships m join accounts a on a.id = m.account_id
    where m.organization_id = ${org.organization.id} and a.email = ${email}`
  )[0];

async function openPage(name: string) {
  await page.goto(`${server.url}/console/${name}`);
  await page.locator('#page .loading').waitFor({ state: 'detached' });
}

async function search(email: string) {
  await page.getByLabel('Name or email starts with').fill(email);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await expect.poll(() => page.locator('tbody tr').count()).toBe(1);
  await expect.poll(() => page.locator('tbody tr').first().textContent()).toContain(email);
}

const statusText = () => page.locator('#status').textContent();
const errorText = () => page.locator('#error').textContent();

describe('members', () => {
  it('pages through the members', async () => {
    await openPage('members');
    await expect.poll(() => page.locator('tbody tr').count()).toBe(25);
    await page.getByRole('button', { name: 'Next page →' }).click();
    await expect.poll(() => page.locator('tbody tr').count()).toBe(6);
    await page.getByRole('button', { name: '← Previous page' }).click();
    await expect.poll(() => page.locator('tbody tr').count()).toBe(25);
  });

  it('shows each member’s source and last activity', async () => {
    await openPage('members');
    const cell = (email: string, label: string) =>
      page.locator('tbody tr', { hasText: email }).locator(`td[data-label="${label}"]`).textContent();
    await search('p01@acme.test');
    expect(await cell('p01@acme.test', 'Source')).toBe('SCIM · managed by IdP');
    await search('p03@acme.test');
    expect(await cell('p03@acme.test', 'Source')).toBe('SSO');
    // Joined just now: the last activity is today's date, as the console formats it.
    const today = new Date().toLocaleDateString('en-US', { month: 'short', day: 'numeric', year: 'numeric' });
    expect(await cell('p03@acme.test', 'Last activity')).toContain(today);
  });

  it('invites from the dialog, by keyboard, with a role and a group, showing a result per address', async () => {
    await openPage('members');
    const invite = page.getByRole('button', { name: 'Invite people' });
    await invite.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Invite people' });
    await dialog.waitFor();
    expect(await page.evaluate(() => (document.activeElement as HTMLTextAreaElement).labels?.[0]?.textContent)).toBe(
      'Email addresses',
    );
    for (let i = 0; i < 15; i++) await page.keyboard.press('Tab');
    expect(
      await page.evaluate(() => document.activeElement?.closest('dialog') !== null),
      'focus stays in the dialog',
    ).toBe(true);
    await dialog.getByLabel('Email addresses').focus();

    await page.keyboard.type(Array.from({ length: 21 }, (_, i) => `many${i}@acme.test`).join(' '));
    await dialog.getByRole('button', { name: 'Send invitations' }).click();
    await expect.poll(() => dialog.getByRole('alert').textContent()).toContain('at most 20 at once');

    await dialog.getByLabel('Email addresses').fill('new1@acme.test, new2@acme.test not-an-email p05@acme.test');
    await dialog.getByLabel('Admin', { exact: true }).check();
    await dialog.getByLabel('Sales', { exact: true }).check();
    await dialog.getByRole('button', { name: 'Send invitations' }).click();
    const outcome = dialog.getByRole('status');
    await expect.poll(() => outcome.textContent()).toContain('2 invited, 2 not invited');
    expect(await outcome.textContent()).toContain('not-an-email — invalid email address');
    expect(await outcome.textContent()).toContain('p05@acme.test — p05@acme.test is already a member');
    await shot('invite-dialog');

    await page.keyboard.press('Escape');
    // The dialog's close event (which removes it and gives focus back) comes a task after it hides.
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent)).toBe('Invite people');
    expect(await membership('new1@acme.test')).toEqual({ status: 'invited', roles: ['admin'] });
    const invitations =
      await ctx.sql`select email, group_ids from invitations where organization_id = ${org.organization.id} order by email`;
    expect(invitations.map((i) => [i.email, i.groupIds])).toEqual([
      ['new1@acme.test', [sales.id]],
      ['new2@acme.test', [sales.id]],
    ]);
    expect(await ctx.sql`select 1 from accounts where email like 'many%'`).toHaveLength(0);

    // Pending invitations have a tab of their own.
    await page.getByRole('tab', { name: /^Pending invitations/ }).click();
    await expect.poll(() => page.locator('tbody tr').count()).toBe(2);
    expect(await page.locator('tbody').textContent()).toContain('pending invite');

    await page.getByRole('button', { name: 'Withdraw the invitation to new2@acme.test' }).click();
    await page
      .getByRole('alertdialog', { name: 'Withdraw invitation' })
      .getByRole('button', { name: 'Withdraw' })
      .click();
    await expect.poll(statusText).toBe('The invitation to new2@acme.test was withdrawn.');
    await expect.poll(() => page.locator('tbody tr').count()).toBe(1);
    expect((await ctx.sql`select status from invitations where email = 'new2@acme.test'`)[0]!.status).toBe('revoked');
    expect((await membership('new2@acme.test'))!.status).toBe('removed');
  });

  it('changes roles, and shows the last-owner rule as a clear message', async () => {
    await openPage('members');
    await search('p07@acme.test');
    await page.getByRole('button', { name: 'Edit roles of p07@acme.test' }).click();
    const dialog = page.getByRole('dialog', { name: 'Edit roles' });
    await dialog.getByLabel('Member', { exact: true }).uncheck();
    await dialog.getByRole('button', { name: 'Save roles' }).click();
    await expect.poll(() => dialog.getByRole('alert').textContent()).toBe('Choose at least one role.');
    await dialog.getByLabel('Billing', { exact: true }).check();
    await shot('edit-roles-dialog');
    await dialog.getByRole('button', { name: 'Save roles' }).click();
    await expect.poll(statusText).toBe('Roles of p07@acme.test are now: billing.');
    expect(await membership('p07@acme.test')).toEqual({ status: 'active', roles: ['billing'] });

    await search('owner@acme.test');
    await page.getByRole('button', { name: 'Edit roles of owner@acme.test' }).click();
    await dialog.getByLabel('Owner', { exact: true }).uncheck();
    await dialog.getByLabel('Admin', { exact: true }).check();
    await dialog.getByRole('button', { name: 'Save roles' }).click();
    await expect
      .poll(() => dialog.getByRole('alert').textContent())
      .toBe('The last owner of an organization cannot be removed or demoted.');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect(await membership('owner@acme.test')).toEqual({ status: 'active', roles: ['owner'] });
  });

  it('removes one member after confirming', async () => {
    await openPage('members');
    await search('p08@acme.test');
    await page.getByRole('button', { name: 'Remove p08@acme.test' }).click();
    const confirm = page.getByRole('alertdialog', { name: 'Remove member' });
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Cancel');
    await shot('remove-confirm');
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    expect((await membership('p08@acme.test'))!.status).toBe('active');

    // This time by keyboard only: Enter opens the confirmation, Tab moves from Cancel to Remove.
    await page.getByRole('button', { name: 'Remove p08@acme.test' }).focus();
    await page.keyboard.press('Enter');
    await confirm.waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Remove');
    await page.keyboard.press('Enter');
    await expect.poll(statusText).toBe('p08@acme.test was removed.');
    expect((await membership('p08@acme.test'))!.status).toBe('removed');
  });

  it('changes a member the IdP manages only when told to override it, and says so', async () => {
    await openPage('members');
    await search('p01@acme.test');
    await page.getByRole('button', { name: 'Edit roles of p01@acme.test' }).click();
    const dialog = page.getByRole('dialog', { name: 'Edit roles' });
    expect(await dialog.textContent()).toContain('managed by your identity provider through SCIM');
    await dialog.getByLabel('Billing', { exact: true }).check();
    // The override is required: the form does not submit without it.
    await dialog.getByRole('button', { name: 'Save roles' }).click();
    expect(await membership('p01@acme.test')).toEqual({ status: 'active', roles: ['member'] });
    await dialog.getByLabel('Override the identity provider').check();
    await dialog.getByRole('button', { name: 'Save roles' }).click();
    await expect.poll(statusText).toBe('Roles of p01@acme.test are now: member, billing.');

    await search('p09@acme.test');
    await page.getByRole('button', { name: 'Remove p09@acme.test' }).click();
    const confirm = page.getByRole('alertdialog', { name: 'Remove member' });
    expect(await confirm.textContent()).toContain('managed by your identity provider through SCIM');
    await confirm.getByRole('button', { name: 'Remove anyway' }).click();
    await expect.poll(statusText).toBe('p09@acme.test was removed.');
    expect((await membership('p09@acme.test'))!.status).toBe('removed');
    const overrides = await ctx.sql`select action from audit_log
      where organization_id = ${org.organization.id} and details->>'idpOverride' = 'true' order by id`;
    expect(overrides.map((a) => a.action)).toEqual(['member.role_changed', 'member.removed']);
  });

  it('removes several at once; the last owner stays, saying why', async () => {
    await openPage('members');
    await search('p10@acme.test');
    await page.getByLabel('Select p10@acme.test').check();
    await search('p11@acme.test');
    await page.getByLabel('Select p11@acme.test').check();
    await search('owner@acme.test');
    await page.getByLabel('Select owner@acme.test').check();
    await page.getByRole('button', { name: 'Remove selected (3)' }).click();
    const confirm = page.getByRole('alertdialog', { name: 'Remove 3 members' });
    expect(await confirm.getByRole('listitem').allTextContents()).toEqual([
      'p10@acme.test',
      'p11@acme.test',
      'owner@acme.test',
    ]);
    await confirm.getByRole('button', { name: 'Remove them' }).click();
    await expect.poll(statusText).toBe('2 removed, 1 not removed.');
    expect(await errorText()).toBe(
      'Not removed:\nowner@acme.test: the last owner of an organization cannot be removed or demoted',
    );
    expect((await membership('p10@acme.test'))!.status).toBe('removed');
    expect((await membership('p11@acme.test'))!.status).toBe('removed');
    expect((await membership('owner@acme.test'))!.status).toBe('active');
    await shot('members-after-removal');
  });
});

describe('CSV import', () => {
  const csv = [
    'email,group membership,name',
    'csv1@acme.test,Sales,One',
    'csv2@acme.test,,Two',
    'bad-address,,Three',
    'csv1@acme.test,,Again',
    'csv4@acme.test,Nope,Four',
    'p06@acme.test,,Member',
    'new1@acme.test,,Invited before',
  ].join('\n');

  it('invites the good rows, lists the skipped ones with reasons, and downloads the summary', async () => {
    await openPage('import');
    await page.getByRole('button', { name: 'Upload and invite' }).click();
    await expect.poll(() => page.getByRole('alert').filter({ hasText: 'Choose a CSV file first.' }).count()).toBe(1);

    await page
      .getByLabel('CSV file')
      .setInputFiles({ name: 'no-email.csv', mimeType: 'text/csv', buffer: Buffer.from('name\nx\n') });
    await page.getByRole('button', { name: 'Upload and invite' }).click();
    await expect
      .poll(() => page.getByRole('alert').filter({ hasText: 'The file needs an "email" column.' }).count())
      .toBe(1);

    const tooMany = ['email', ...Array.from({ length: 1001 }, (_, i) => `bulk${i}@acme.test`)].join('\n');
    await page
      .getByLabel('CSV file')
      .setInputFiles({ name: 'too-many.csv', mimeType: 'text/csv', buffer: Buffer.from(tooMany) });
    await page.getByRole('button', { name: 'Upload and invite' }).click();
    await expect
      .poll(() => page.getByRole('alert').filter({ hasText: 'At most 1000 rows per file (got 1001).' }).count())
      .toBe(1);
    expect(await ctx.sql`select 1 from accounts where email like 'bulk%'`).toHaveLength(0);

    await page
      .getByLabel('CSV file')
      .setInputFiles({ name: 'people.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await page.getByLabel('Viewer', { exact: true }).check();
    await page.getByRole('button', { name: 'Upload and invite' }).click();
    await expect.poll(statusText).toBe('people.csv: 2 invited, 5 skipped of 7 rows.');
    const rows = await page
      .locator('tbody tr')
      .evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    expect(rows).toEqual([
      ['2', 'csv1@acme.test', 'invited', '—'],
      ['3', 'csv2@acme.test', 'invited', '—'],
      ['4', 'bad-address', 'skipped', 'invalid email format'],
      ['5', 'csv1@acme.test', 'skipped', 'duplicate in file'],
      ['6', 'csv4@acme.test', 'skipped', 'unknown group(s): Nope'],
      ['7', 'p06@acme.test', 'skipped', 'already a member'],
      ['8', 'new1@acme.test', 'skipped', 'already invited'],
    ]);
    await shot('import-result');
    await page.getByLabel('Show skipped rows only').check();
    await expect.poll(() => page.locator('tbody tr').count()).toBe(5);

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download the result (CSV)' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('people-import-result.csv');
    const summary = fs.readFileSync(await download.path(), 'utf8');
    expect(summary.split('\r\n')).toEqual([
      'row,email,status,reasons',
      '2,csv1@acme.test,invited,',
      '3,csv2@acme.test,invited,',
      '4,bad-address,skipped,invalid email format',
      '5,csv1@acme.test,skipped,duplicate in file',
      '6,csv4@acme.test,skipped,unknown group(s): Nope',
      '7,p06@acme.test,skipped,already a member',
      '8,new1@acme.test,skipped,already invited',
      '',
    ]);
    expect(await membership('csv1@acme.test')).toEqual({ status: 'invited', roles: ['viewer'] });
    expect((await ctx.sql`select group_ids from invitations where email = 'csv1@acme.test'`)[0]!.groupIds).toEqual([
      sales.id,
    ]);
    expect(await membership('csv4@acme.test')).toBeUndefined();
  });
});

describe('groups and role mapping', () => {
  it('previews how many members a mapping affects, then saves it', async () => {
    await openPage('groups');
    await expect
      .poll(() => page.getByRole('region', { name: 'Groups from the identity provider' }).textContent())
      .toContain('Engineering');
    await page.getByRole('button', { name: 'Map a group to roles' }).click();
    const dialog = page.getByRole('dialog', { name: 'Map a group to roles' });
    const effect = dialog.getByRole('status');
    expect(await dialog.getByLabel('Group name').isVisible(), 'only the chosen way of naming the group shows').toBe(
      false,
    );
    await dialog.getByLabel('Group', { exact: true }).selectOption({ label: 'Engineering (SCIM)' });
    await expect.poll(() => effect.textContent()).toContain('This mapping affects 3 members');
    await dialog.getByLabel('Admin', { exact: true }).check();
    await expect.poll(() => effect.textContent()).toBe('This mapping affects 3 members: they will have Admin.');
    await shot('mapping-dialog');
    await dialog.getByRole('button', { name: 'Save mapping' }).click();
    await expect.poll(statusText).toContain('Mapping saved: Engineering (SCIM) → Admin.');
    const table = page.getByRole('region', { name: 'Role mappings' });
    await expect.poll(() => table.locator('tbody tr').first().textContent()).toContain('3 members');

    await page.getByRole('button', { name: 'Map a group to roles' }).click();
    await dialog.getByLabel('Every group with a name').check();
    expect(await dialog.getByLabel('Group', { exact: true }).isVisible()).toBe(false);
    await dialog.getByLabel('Group name').fill('ENGINEERING');
    await dialog.getByLabel('Viewer', { exact: true }).check();
    await expect.poll(() => effect.textContent()).toBe('This mapping affects 4 members: they will have Viewer.');
    await dialog.getByRole('button', { name: 'Save mapping' }).click();
    await expect.poll(() => table.locator('tbody tr').count()).toBe(2);
    expect(await table.locator('tbody tr').nth(1).textContent()).toContain(
      'Every group named “ENGINEERING”Viewer4 members',
    );
    const mappings =
      await ctx.sql`select group_name, roles from group_role_mappings where organization_id = ${org.organization.id} order by created_at`;
    expect(mappings.map((m) => [m.groupName, m.roles])).toEqual([
      [null, ['admin']],
      ['ENGINEERING', ['viewer']],
    ]);
    await shot('groups');
  });

  it('changes the roles of a mapping and deletes one, saying how many members it affects', async () => {
    await openPage('groups');
    await page.getByRole('button', { name: 'Change the roles of the mapping of Engineering (SCIM)' }).click();
    const dialog = page.getByRole('dialog', { name: 'Change the roles of a mapping' });
    await dialog.getByLabel('Billing', { exact: true }).check();
    await expect
      .poll(() => dialog.getByRole('status').textContent())
      .toBe('This mapping affects 3 members: they will have Admin, Billing.');
    await dialog.getByRole('button', { name: 'Save roles' }).click();
    await expect.poll(statusText).toContain('Mapping saved: Engineering (SCIM) → Admin, Billing.');

    await page.getByRole('button', { name: 'Delete the mapping of Every group named “ENGINEERING”' }).click();
    const confirm = page.getByRole('alertdialog', { name: 'Delete mapping' });
    expect(await confirm.textContent()).toContain(
      '4 members of Every group named “ENGINEERING” lose Viewer from this mapping',
    );
    await confirm.getByRole('button', { name: 'Delete mapping' }).click();
    await expect.poll(statusText).toBe('Mapping deleted.');
    const mappings =
      await ctx.sql`select group_name, roles from group_role_mappings where organization_id = ${org.organization.id}`;
    expect(mappings.map((m) => [m.groupName, m.roles])).toEqual([[null, ['admin', 'billing']]]);
  });

  it("adds and removes a local group's members by email; shows an IdP group's members read-only", async () => {
    await openPage('groups');
    await page.getByRole('button', { name: 'Members of Sales', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Members of Sales' });
    await expect.poll(() => dialog.locator('tbody').textContent()).toBe('Nobody is in this group.');
    await dialog.getByLabel('Member’s email').fill('stranger@elsewhere.test');
    await dialog.getByRole('button', { name: 'Add to group' }).click();
    await expect
      .poll(() => dialog.getByRole('alert').textContent())
      .toBe('Nobody with the address stranger@elsewhere.test is in the organization; invite them first.');
    await dialog.getByLabel('Member’s email').fill('P12@acme.test');
    await dialog.getByRole('button', { name: 'Add to group' }).click();
    await expect.poll(() => dialog.getByRole('status').textContent()).toBe('p12@acme.test added.');
    // The message comes before the list is drawn again, and the empty list is one row too.
    await expect.poll(() => dialog.locator('tbody').textContent()).toContain('p12@acme.test');
    expect(await dialog.locator('tbody tr').count()).toBe(1);
    const members = async () =>
      (
        await ctx.sql`select a.email from group_members gm join accounts a on a.id = gm.account_id where gm.group_id = ${sales.id}`
      ).map((r) => r.email);
    expect(await members()).toEqual(['p12@acme.test']);
    await shot('group-members-dialog');
    await dialog.getByRole('button', { name: 'Remove p12@acme.test from Sales' }).click();
    await expect.poll(() => dialog.getByRole('status').textContent()).toBe('p12@acme.test removed from the group.');
    expect(await members()).toEqual([]);
    const engineering = page.getByRole('button', { name: 'Members of Engineering (SCIM)' });
    const drawnBefore = await engineering.elementHandle();
    await page.keyboard.press('Escape');
    // Closing after a change draws the groups again (the same rows): wait until it has.
    await page.waitForFunction((button) => !button.isConnected, drawnBefore);

    await engineering.click();
    const idp = page.getByRole('dialog', { name: 'Members of Engineering' });
    await expect.poll(() => idp.locator('tbody tr').count()).toBe(3);
    expect(await idp.getByRole('button', { name: /Remove/ }).count()).toBe(0);
    expect(await idp.textContent()).toContain('The identity provider manages this group.');
    await page.keyboard.press('Escape');
  });

  it('creates a local group', async () => {
    await openPage('groups');
    await page.getByLabel('New group name').fill('Support');
    await page.getByRole('button', { name: 'Create group' }).click();
    await expect.poll(statusText).toBe('Group Support created.');
    await page.getByLabel('New group name').fill('sales');
    await page.getByRole('button', { name: 'Create group' }).click();
    await expect.poll(errorText).toBe('A group named "sales" already exists.');
  });
});

describe('identity provider', () => {
  it('adds and verifies a domain and turns auto-join on; tabs work with the arrow keys', async () => {
    await openPage('identity');
    await page.getByRole('tab', { name: 'SCIM provisioning' }).focus();
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    expect(await page.getByRole('tab', { name: 'Domains and auto-join' }).getAttribute('aria-selected')).toBe('true');
    // The tabs passed over draw in the background, and a draw that ends clears the page's error
    // message: let them end before the refusal below is looked for.
    for (const name of ['SCIM tokens', 'Recent sign-in attempts'])
      await page.getByRole('region', { name, includeHidden: true }).waitFor({ state: 'attached' });
    const panel = page.getByRole('tabpanel', { name: 'Domains and auto-join' });
    await panel.getByLabel('Email domain', { exact: true }).fill('not a domain');
    await panel.getByRole('button', { name: 'Add domain' }).click();
    await expect.poll(() => panel.getByRole('alert').first().textContent()).toMatch(/domain/i);
    await panel.getByLabel('Email domain', { exact: true }).fill('acme.test');
    await panel.getByRole('button', { name: 'Add domain' }).click();
    await expect
      .poll(statusText)
      .toMatch(/^Publish a TXT record on acme.test with the value orgsync-verification=\S+,/);
    // Not published yet: the refusal names the record to publish.
    await panel.getByRole('button', { name: 'Verify acme.test' }).click();
    await expect.poll(() => page.getByRole('alert').first().textContent()).toMatch(/TXT record was not found/);
    const [added] =
      await ctx.sql`select verification_token from organization_domains where organization_id = ${org.organization.id} and domain = 'acme.test'`;
    dns.publish('acme.test', added!.verificationToken);
    await panel.getByRole('button', { name: 'Verify acme.test' }).click();
    await expect.poll(statusText).toBe('acme.test is verified.');
    await panel.getByLabel('People from a verified domain join on their first SSO sign-in').check();
    await expect.poll(statusText).toContain('Auto-join is on');
    const [settings] =
      await ctx.sql`select auto_join_verified_domains from organizations where id = ${org.organization.id}`;
    expect(settings!.autoJoinVerifiedDomains).toBe(true);
    const [domain] =
      await ctx.sql`select verified_at from organization_domains where organization_id = ${org.organization.id} and domain = 'acme.test'`;
    expect(domain!.verifiedAt).toBeInstanceOf(Date);
    await shot('identity-domains');
  });

  it('keeps an error on the page while a tab passed over finishes drawing', async () => {
    // The SAML tab's sign-in attempts are held until the refusal below is on the page.
    const samlAttempts = await holdRequests(page, /\/api\/saml\/attempts/);
    try {
      await openPage('identity');
      await page.getByRole('tab', { name: 'SCIM provisioning' }).focus();
      await page.keyboard.press('ArrowRight');
      await page.keyboard.press('ArrowRight');
      const panel = page.getByRole('tabpanel', { name: 'Domains and auto-join' });
      await panel.getByLabel('Email domain', { exact: true }).fill('beta.test');
      await panel.getByRole('button', { name: 'Add domain' }).click();
      await expect.poll(statusText).toMatch(/^Publish a TXT record on beta.test /);
      await panel.getByRole('button', { name: 'Verify beta.test' }).click();
      const error = page.locator('#error');
      await expect.poll(() => error.textContent()).toMatch(/TXT record was not found/);

      samlAttempts.release();
      await page
        .locator('#panel-saml')
        .getByRole('region', { name: 'Recent sign-in attempts', includeHidden: true })
        .waitFor({ state: 'attached' });
      expect(await error.isVisible()).toBe(true);
      expect(await error.textContent()).toMatch(/TXT record was not found/);
    } finally {
      await samlAttempts.stop();
    }
    expect(pageErrors).toEqual([]);
  });
});

describe('identity provider: SCIM tokens', () => {
  it('creates a token shown once, rotates one and revokes one', async () => {
    await openPage('identity?tab=scim');
    const panel = page.getByRole('tabpanel', { name: 'SCIM provisioning' });
    await panel.getByRole('button', { name: 'Create token' }).waitFor();
    const listed = await (
      await fetch(`${server.url}/api/scim-tokens`, { headers: { authorization: `Bearer ${org.adminKey}` } })
    ).json();
    expect(await panel.textContent()).toContain(listed.scimBaseUrl);

    const create = async (name: string, title = 'SCIM token created') => {
      await panel.getByLabel('Token name').fill(name);
      await panel.getByLabel('Expires in (days)').fill('30');
      await panel.getByRole('button', { name: 'Create token' }).click();
      return takeSecret(title);
    };
    const takeSecret = async (title: string) => {
      const dialog = page.getByRole('dialog', { name: title });
      const secret = (await dialog.locator('#new-secret').textContent())!;
      await shot(title.toLowerCase().replace(/ /g, '-'));
      await dialog.getByRole('button', { name: 'I have copied it' }).click();
      // The dialog's close event (which removes it) comes a task after it hides.
      await expect.poll(() => page.content()).not.toContain(secret);
      return secret;
    };

    const okta = await create('okta');
    expect(await verifyCredential(ctx.sql, ctx.config.serverSecret, 'scim', okta)).toMatchObject({ name: 'okta' });
    await expect.poll(() => panel.getByRole('region', { name: 'SCIM tokens' }).textContent()).toContain('okta');

    await panel.getByRole('button', { name: 'Rotate the token okta' }).first().click();
    await page.getByRole('alertdialog', { name: 'Rotate token' }).getByRole('button', { name: 'Rotate' }).click();
    const rotated = await takeSecret('SCIM token rotated');
    expect(rotated).not.toBe(okta);
    expect(await verifyCredential(ctx.sql, ctx.config.serverSecret, 'scim', rotated)).not.toBeNull();

    const entra = await create('entra');
    await panel.getByRole('button', { name: 'Revoke the token entra' }).click();
    await page.getByRole('alertdialog', { name: 'Revoke token' }).getByRole('button', { name: 'Revoke' }).click();
    await expect.poll(statusText).toBe('Token entra revoked.');
    expect(await verifyCredential(ctx.sql, ctx.config.serverSecret, 'scim', entra)).toBeNull();
    await shot('identity-scim-tokens');
  });
});

/** IdP metadata with a fresh self-signed certificate (made by the test IdP, as an IdP would have one). */
function idpMetadata(entityId: string, ssoUrl: string): string {
  const body = makeIdpKeys('idp.example.test').certificate;
  return `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="${entityId}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="${ssoUrl}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`;
}

describe('identity provider: SAML', () => {
  it('shows what to paste into the IdP, adds a connection from its metadata, test-logs in, disables and deletes it', async () => {
    await openPage('identity?tab=saml');
    const panel = page.getByRole('tabpanel', { name: 'SAML single sign-on' });
    // The form shows before the connections are first drawn; that first drawing, landing after an
    // addition's, would show none.
    await panel.getByRole('region', { name: 'SAML connections' }).waitFor();
    for (const url of ['/saml/acme/acs', '/saml/acme/metadata'])
      expect(await panel.textContent()).toContain(`${TEST_PUBLIC_URL}${url}`);

    await panel.getByLabel('Connection name').fill('Okta');
    await panel.getByLabel('IdP metadata XML', { exact: true }).fill('<EntityDescriptor/>');
    await panel.getByRole('button', { name: 'Add connection' }).click();
    await expect.poll(() => panel.getByRole('alert').first().textContent()).toMatch(/metadata/i);
    // The IdP's sign-in URL is one of orgsync's own (it answers 404 there): a page that loads. An
    // IdP host that does not resolve left Chromium committing its error page after the test had
    // gone on, which could cut the next navigation short.
    const ssoUrl = `${server.url}/test-idp/sso`;
    await panel
      .getByLabel('IdP metadata XML', { exact: true })
      .fill(idpMetadata('http://www.okta.com/exk-test', ssoUrl));
    await panel.getByRole('button', { name: 'Add connection' }).click();
    await expect.poll(statusText).toBe('Okta added. Try it with “Test login”.');
    await expect
      .poll(() => panel.getByRole('region', { name: 'SAML connections' }).textContent())
      .toContain('http://www.okta.com/exk-test');
    await shot('identity-saml-connection');

    // The test login starts an SP-initiated login: the browser goes to the IdP with a SAMLRequest.
    await Promise.all([
      page.waitForURL((url) => url.href.startsWith(`${ssoUrl}?SAMLRequest=`)),
      panel.getByRole('link', { name: 'Test login with Okta' }).click(),
    ]);

    await openPage('identity?tab=saml');
    await panel.getByRole('button', { name: 'Disable Okta' }).click();
    await expect.poll(statusText).toBe('Okta is disabled.');
    const listed = await (
      await fetch(`${server.url}/api/saml/connections`, { headers: { authorization: `Bearer ${org.adminKey}` } })
    ).json();
    expect(listed.items.map((c: { name: string; enabled: boolean }) => [c.name, c.enabled])).toEqual([['Okta', false]]);
    await panel.getByRole('button', { name: 'Delete Okta' }).click();
    await page
      .getByRole('alertdialog', { name: 'Delete SAML connection' })
      .getByRole('button', { name: 'Delete connection' })
      .click();
    await expect.poll(statusText).toBe('Okta deleted.');
  });

  it('adds a connection by its metadata URL and shows its last refresh and its error', async () => {
    let failing = false;
    const metadata = idpMetadata('https://entra.example.test/tenant', 'https://idp.example.test/sso');
    const idp = http.createServer((_req, res) => {
      if (failing) res.writeHead(500).end();
      else res.writeHead(200, { 'content-type': 'application/samlmetadata+xml' }).end(metadata);
    });
    await new Promise<void>((resolve) => idp.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(idp.address() as AddressInfo).port}/metadata`;
      await openPage('identity?tab=saml');
      const panel = page.getByRole('tabpanel', { name: 'SAML single sign-on' });
      await panel.getByRole('region', { name: 'SAML connections' }).waitFor(); // drawn first, as above
      await panel.getByLabel('Connection name').fill('Entra');
      await panel.getByLabel('Metadata URL').fill(url);
      await panel.getByRole('button', { name: 'Add connection' }).click();
      await expect.poll(statusText).toBe('Entra added. Try it with “Test login”.');
      const connections = () => panel.getByRole('region', { name: 'SAML connections' }).textContent();
      await expect.poll(connections).toContain(url);
      expect(await connections()).toMatch(/refreshed /);

      failing = true;
      await panel.getByRole('button', { name: 'Refresh the metadata of Entra' }).click();
      await expect.poll(connections).toMatch(/refresh failed.*answered HTTP 500/);
      const error = page.locator('#error');
      await expect.poll(() => error.textContent()).toMatch(/HTTP 500/);
      await shot('identity-saml-metadata-url');

      // The refusal stays on the page until the admin next does something that works, here in a
      // dialog's form (which shows its own errors in its own box).
      failing = false;
      await panel.getByRole('button', { name: 'Update the metadata of Entra' }).click();
      const dialog = page.getByRole('dialog', { name: 'Update Entra' });
      await dialog.getByRole('button', { name: 'Save metadata' }).click();
      await expect.poll(statusText).toBe('Entra: metadata updated.');
      expect(await error.isVisible()).toBe(false);

      await panel.getByRole('button', { name: 'Delete Entra' }).click();
      await page
        .getByRole('alertdialog', { name: 'Delete SAML connection' })
        .getByRole('button', { name: 'Delete connection' })
        .click();
      await expect.poll(statusText).toBe('Entra deleted.');
    } finally {
      await new Promise((resolve) => idp.close(resolve));
    }
  });
});

describe('audit log', () => {
  it('filters by action', async () => {
    await openPage('audit');
    // The unfiltered first page, drawn late, would replace the filtered one (and no rows pass the check below).
    await page.getByRole('region', { name: 'Audit log entries' }).waitFor();
    await page.getByLabel('Action').fill('member');
    await page.getByRole('button', { name: 'Filter' }).click();
    // The unfiltered page may show member.* rows too: wait until every row is one.
    const actions = () => page.locator('tbody tr td:nth-child(3)').allTextContents();
    await expect.poll(async () => (await actions()).every((a) => a.startsWith('member.'))).toBe(true);
    expect(await actions()).toContain('member.removed');
    expect((await actions()).length).toBeGreaterThan(3);
    await shot('audit');
  });
});

describe('signed in through SSO (the session cookie)', () => {
  it('needs no key, offers only what the member may do, and signs out', async () => {
    const viewer = await ensureAccount(ctx.sql, { email: 'viewer@acme.test' });
    await joinOrganization(
      ctx.sql,
      { organizationId: org.organization.id, accountId: viewer.id, source: 'sso', roles: ['viewer'] },
      actor,
    );
    const { secret } = await createSession(ctx.sql, ctx.config.serverSecret, {
      organizationId: org.organization.id,
      accountId: viewer.id,
      via: 'saml',
    });
    const member = await chromium.context.newPage(); // a new tab: no admin key in its sessionStorage
    try {
      await chromium.context.addCookies([{ name: SESSION_COOKIE, value: secret, url: server.url }]);
      await member.goto(`${server.url}/console/members`);
      await member.getByText('Signed in as viewer@acme.test').waitFor();
      await member.getByRole('region', { name: 'Members, page 1' }).waitFor();
      expect(await member.getByRole('button', { name: 'Invite people' }).count()).toBe(0);
      expect(await member.getByRole('button', { name: 'Edit roles' }).count()).toBe(0);
      await member.goto(`${server.url}/console/audit`);
      await member.getByText('You need the permission members:manage to read the audit log.').waitFor();

      await member.getByRole('button', { name: 'Sign out' }).click();
      await member.waitForURL(/\/console\/sign-in\?signedOut=1$/);
      await expect
        .poll(() => member.locator('#status').textContent())
        .toBe('You are signed out of the console in this tab.');
      // Where the SAML sign-in is built, signing out also ends the SSO session.
      expect(await resolveSession(ctx.sql, ctx.config.serverSecret, secret)).toBeNull();
    } finally {
      await member.close();
      await chromium.context.clearCookies();
    }
  });
});

describe('every page', () => {
  const pages = ['members', 'import', 'groups', 'identity', 'audit', 'sign-in'];

  it('labels every field, starts with a skip link, and fits a narrow (390 px) screen', async () => {
    for (const name of pages) {
      await page.setViewportSize({ width: 1280, height: 900 });
      await openPage(name);
      await page.locator('#page:not([aria-busy])').waitFor(); // drawn, not only started
      const unlabelled = await page.evaluate(() =>
        [...document.querySelectorAll('input, select, textarea')]
          .filter(
            (el) =>
              !(el as HTMLInputElement).labels?.length &&
              !el.getAttribute('aria-label') &&
              !el.getAttribute('aria-labelledby'),
          )
          .map((el) => el.outerHTML),
      );
      expect(unlabelled, name).toEqual([]);
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.textContent), name).toBe('Skip to content');

      await page.setViewportSize({ width: 390, height: 844 });
      expect(await page.evaluate(() => document.documentElement.scrollWidth), name).toBeLessThanOrEqual(390);
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      await shot(`narrow-${name}`, false);
    }
    await openPage('members');
    await page.getByRole('button', { name: 'Invite people' }).click();
    expect(
      await page.evaluate(() => document.querySelector('dialog')!.getBoundingClientRect().right),
    ).toBeLessThanOrEqual(390);
    await shot('narrow-invite-dialog', false);
    await page.keyboard.press('Escape');

    await page.setViewportSize({ width: 1280, height: 900 });
    for (const tab of ['scim', 'saml']) {
      await openPage(`identity?tab=${tab}`);
      await shot(`identity-${tab}`);
    }
    expect(pageErrors).toEqual([]);
  });
});
