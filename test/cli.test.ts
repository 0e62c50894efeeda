import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemActor } from '../src/core/actor.ts';
import { verifyCredential } from '../src/core/credentials.ts';
import { inviteMembers } from '../src/core/invitations.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { TEST_SERVER_SECRET } from './support/context.ts';

const exec = promisify(execFile);
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => db.close());

const env = () => ({
  PATH: process.env.PATH,
  DATABASE_URL: db.url,
  SERVER_SECRET: TEST_SERVER_SECRET,
  PUBLIC_URL: 'https://sso.example.com',
});

/** Runs the CLI as written (no `--json` added); stdout and stderr as they came. */
async function raw(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['bin/orgsync.js', ...args], { env: env() });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Runs the CLI with `--json`: stdout must be exactly one JSON object, and stderr empty. */
async function cli(...args: string[]): Promise<{ code: number; json: Record<string, any> }> {
  const { code, stdout, stderr } = await raw(...args, '--json');
  expect(stderr).toBe('');
  expect(stdout.trim().split('\n')).toHaveLength(1);
  const json = JSON.parse(stdout);
  expect(json).toBeTypeOf('object');
  expect(Array.isArray(json)).toBe(false);
  return { code, json };
}

// Each command is a process of its own that compiles the TypeScript it imports (about 3 s on a
// quiet machine): a test running a dozen of them needs more than the default 30 s.
describe.skipIf(!process.env.DATABASE_URL)('cli (--json)', { timeout: 180_000 }, () => {
  it('creates an organization, issues, lists and revokes SCIM tokens and admin keys', async () => {
    expect(await cli('migrate')).toEqual({ code: 0, json: { applied: [] } });
    const org = await cli('org', 'create', '--name', 'Acme Corp', '--owner-email', 'it@acme.test');
    expect(org.code).toBe(0);
    expect(org.json).toMatchObject({ slug: 'acme-corp', ownerEmail: 'it@acme.test' });

    const token = await cli('scim-token', 'create', '--org', 'acme-corp', '--name', 'okta', '--expires-in-days', '30');
    expect(token.json).toMatchObject({
      organizationId: org.json.id,
      name: 'okta',
      scimBaseUrl: 'https://sso.example.com/scim/v2',
    });
    expect(await verifyCredential(db.sql, TEST_SERVER_SECRET, 'scim', token.json.token)).toMatchObject({
      id: token.json.id,
    });

    const key = await cli('api-key', 'create', '--org', org.json.id, '--name', 'deploy', '--role', 'owner');
    expect(key.json).toMatchObject({ roles: ['owner'] });
    expect(key.json.key).toMatch(/^oskey_/);

    const listed = await cli('scim-token', 'list', '--org', 'acme-corp');
    expect(listed.json.items).toHaveLength(1);
    expect(JSON.stringify(listed.json)).not.toContain(token.json.token);

    expect((await cli('scim-token', 'revoke', '--org', 'acme-corp', '--id', token.json.id)).code).toBe(0);
    // Checked in the database: this process remembers tokens it verified for a few seconds.
    const [revoked] = await db.sql`select revoked_at from credentials where id = ${token.json.id}`;
    expect(revoked!.revokedAt).toBeInstanceOf(Date);
  });

  it('reports errors as one JSON object with a non-zero exit code', async () => {
    expect(await cli('org', 'create', '--name', 'X')).toMatchObject({ code: 2, json: { error: 'usage' } });
    expect(await cli('scim-token', 'create', '--org', 'nope', '--name', 'x')).toMatchObject({
      code: 1,
      json: { error: 'not_found' },
    });
    expect(await cli('frobnicate')).toMatchObject({ code: 2, json: { error: 'usage' } });
  });

  it('prints one JSON object for argument-parse errors, no command and --help', async () => {
    const bogus = await cli('org', 'create', '--bogus');
    expect(bogus).toMatchObject({ code: 2, json: { error: 'usage' } });
    expect(bogus.json.message).toContain('--bogus');
    // A string option followed by --json instead of a value is a parse error too.
    expect(await cli('--name')).toMatchObject({ code: 2, json: { error: 'usage' } });
    const none = await cli();
    expect(none).toMatchObject({ code: 2, json: { error: 'usage' } });
    expect(none.json.message).toContain('usage: orgsync');
    const help = await cli('--help');
    expect(help.code).toBe(0);
    expect(help.json.usage).toContain('scim-token revoke');
    expect(await cli('org', 'create', '-h')).toMatchObject({
      code: 0,
      json: { usage: expect.stringContaining('usage: orgsync') },
    });

    // Without --json they stay text: the parse error on stderr, help on stdout.
    const text = await raw('org', 'create', '--bogus');
    expect(text.code).toBe(2);
    expect(text.stdout).toBe('');
    expect(text.stderr).toContain("Unknown option '--bogus'");
    expect(await raw('--help')).toMatchObject({ code: 0, stdout: expect.stringContaining('usage: orgsync') });
  });

  it('revokes only credentials of the kind the command names', async () => {
    const org = await cli('org', 'create', '--name', 'Kinds Inc', '--owner-email', 'it@kinds.test');
    const token = await cli('scim-token', 'create', '--org', 'kinds-inc', '--name', 'okta');
    const key = await cli('api-key', 'create', '--org', 'kinds-inc', '--name', 'deploy', '--role', 'admin');
    const revokedAt = async (id: string) =>
      (await db.sql`select revoked_at from credentials where id = ${id}`)[0]!.revokedAt;

    const wrongKey = await cli('scim-token', 'revoke', '--org', 'kinds-inc', '--id', key.json.id);
    expect(wrongKey).toMatchObject({ code: 1, json: { error: 'not_found' } });
    expect(wrongKey.json.message).toBe(`no SCIM token with id ${key.json.id} in kinds-inc`);
    expect(await revokedAt(key.json.id)).toBeNull();
    expect(await verifyCredential(db.sql, TEST_SERVER_SECRET, 'admin', key.json.key)).toMatchObject({
      id: key.json.id,
    });

    const wrongToken = await cli('api-key', 'revoke', '--org', 'kinds-inc', '--id', token.json.id);
    expect(wrongToken).toMatchObject({ code: 1, json: { error: 'not_found' } });
    expect(wrongToken.json.message).toBe(`no admin API key with id ${token.json.id} in kinds-inc`);
    expect(await revokedAt(token.json.id)).toBeNull();
    expect(await verifyCredential(db.sql, TEST_SERVER_SECRET, 'scim', token.json.token)).toMatchObject({
      id: token.json.id,
    });

    // Nothing was audited as revoked by the refused attempts.
    const audited =
      await db.sql`select action from audit_log where organization_id = ${org.json.id} and action like '%revoked'`;
    expect(audited).toEqual([]);
  });

  it('lists and revokes admin API keys', async () => {
    await cli('org', 'create', '--name', 'Keys Ltd', '--owner-email', 'it@keys.test');
    const deploy = await cli('api-key', 'create', '--org', 'keys-ltd', '--name', 'deploy', '--role', 'owner');
    const ci = await cli(
      'api-key',
      'create',
      '--org',
      'keys-ltd',
      '--name',
      'ci',
      '--role',
      'viewer',
      '--expires-in-days',
      '7',
    );
    await cli('scim-token', 'create', '--org', 'keys-ltd', '--name', 'okta');

    const listed = await cli('api-key', 'list', '--org', 'keys-ltd');
    expect(listed.code).toBe(0);
    const items = listed.json.items as Array<Record<string, any>>;
    expect(items.map((i) => i.id).sort()).toEqual([deploy.json.id, ci.json.id].sort());
    expect(items.find((i) => i.id === ci.json.id)).toMatchObject({ name: 'ci', revokedAt: null });
    expect(JSON.stringify(listed.json)).not.toContain(deploy.json.key);
    expect(JSON.stringify(listed.json)).not.toContain(ci.json.key);

    const revoked = await cli('api-key', 'revoke', '--org', 'keys-ltd', '--id', ci.json.id);
    expect(revoked).toMatchObject({ code: 0, json: { id: ci.json.id } });
    expect(Date.parse(revoked.json.revokedAt)).not.toBeNaN();
    const [row] = await db.sql`select revoked_at from credentials where id = ${ci.json.id}`;
    expect(row!.revokedAt).toBeInstanceOf(Date);
    const [other] = await db.sql`select revoked_at from credentials where id = ${deploy.json.id}`;
    expect(other!.revokedAt).toBeNull();

    const after = (await cli('api-key', 'list', '--org', 'keys-ltd')).json.items as Array<Record<string, any>>;
    expect(after.find((i) => i.id === ci.json.id)!.revokedAt).not.toBeNull();
    expect(after.find((i) => i.id === deploy.json.id)!.revokedAt).toBeNull();
  });

  it('reconcile --once prints what it changed', async () => {
    const org = await cli('org', 'create', '--name', 'Recon Co', '--owner-email', 'it@recon.test');
    const [result] = await inviteMembers(
      db.sql,
      TEST_SERVER_SECRET,
      org.json.id,
      [{ email: 'late@recon.test' }],
      systemActor('system', 'test'),
    );
    expect(result).toMatchObject({ invited: true });
    const invitationId = (result as { invitation: { id: string } }).invitation.id;
    await db.sql`update invitations set expires_at = now() - interval '1 minute' where id = ${invitationId}`;

    expect(await cli('reconcile')).toMatchObject({ code: 2, json: { error: 'usage' } });

    const run = await cli('reconcile', '--once');
    expect(run.code).toBe(0);
    expect(run.json).toMatchObject({ invitationsExpired: 1, invitationsAccepted: 0, durationMs: expect.any(Number) });
    expect(run.json.eventsDispatched).toBeGreaterThanOrEqual(1);
    const [inv] = await db.sql`select status from invitations where id = ${invitationId}`;
    expect(inv).toEqual({ status: 'expired' });

    // A second run finds nothing left to expire.
    expect((await cli('reconcile', '--once')).json).toMatchObject({ invitationsExpired: 0, eventsDispatched: 0 });
  });
});
