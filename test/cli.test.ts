import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyCredential } from '../src/core/credentials.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { TEST_SERVER_SECRET } from './support/context.ts';

const exec = promisify(execFile);
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => db.close());

async function cli(...args: string[]): Promise<{ code: number; json: Record<string, any> }> {
  const env = { PATH: process.env.PATH, DATABASE_URL: db.url, SERVER_SECRET: TEST_SERVER_SECRET, PUBLIC_URL: 'https://sso.example.com' };
  try {
    const { stdout } = await exec(process.execPath, ['bin/orgsync.js', ...args, '--json'], { env });
    return { code: 0, json: JSON.parse(stdout) };
  } catch (error) {
    const e = error as { code: number; stdout: string };
    return { code: e.code, json: JSON.parse(e.stdout) };
  }
}

describe.skipIf(!process.env.DATABASE_URL)('cli (--json)', () => {
  it('creates an organization, issues, lists and revokes SCIM tokens and admin keys', async () => {
    expect(await cli('migrate')).toEqual({ code: 0, json: { applied: [] } });
    const org = await cli('org', 'create', '--name', 'Acme Corp', '--owner-email', 'it@acme.test');
    expect(org.code).toBe(0);
    expect(org.json).toMatchObject({ slug: 'acme-corp', ownerEmail: 'it@acme.test' });

    const token = await cli('scim-token', 'create', '--org', 'acme-corp', '--name', 'okta', '--expires-in-days', '30');
    expect(token.json).toMatchObject({ organizationId: org.json.id, name: 'okta', scimBaseUrl: 'https://sso.example.com/scim/v2' });
    expect(await verifyCredential(db.sql, TEST_SERVER_SECRET, 'scim', token.json.token)).toMatchObject({ id: token.json.id });

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
    expect(await cli('scim-token', 'create', '--org', 'nope', '--name', 'x')).toMatchObject({ code: 1, json: { error: 'not_found' } });
    expect(await cli('frobnicate')).toMatchObject({ code: 2, json: { error: 'usage' } });
  });
});
