import { loadConfig } from '../../src/config.ts';
import type { AppContext } from '../../src/context.ts';
import { systemActor } from '../../src/core/actor.ts';
import { issueCredential } from '../../src/core/credentials.ts';
import { createOrganization } from '../../src/core/organizations.ts';
import { configureMembershipPolicy } from '../../src/core/policy.ts';
import { createLogger } from '../../src/log.ts';
import { createTestDatabase } from './db.ts';

export const TEST_SERVER_SECRET = 'test-server-secret-0123456789abcdefghijklmnop';
export const TEST_PUBLIC_URL = 'https://orgsync.test';

/** An AppContext on a fresh test database; `env` overrides configuration variables. */
export async function createTestContext(env: Record<string, string> = {}): Promise<AppContext> {
  const database = await createTestDatabase();
  const config = loadConfig({
    SERVER_SECRET: TEST_SERVER_SECRET,
    PUBLIC_URL: TEST_PUBLIC_URL,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    NODE_ENV: 'test',
    PORT: '0',
    ...env,
  });
  // As openContext does for a real process.
  configureMembershipPolicy({ singleOrganization: config.singleOrganizationPolicy });
  return {
    config: { ...config, serverSecret: TEST_SERVER_SECRET },
    database,
    sql: database.sql,
    log: createLogger(config.logLevel),
  };
}

const testActor = systemActor('system', 'test');

/** A new organization with an owner, a SCIM token and an owner-level admin API key. */
export async function createTestOrganization(ctx: AppContext, slug: string) {
  const { organization, owner } = await createOrganization(
    ctx.sql,
    { name: slug, slug, ownerEmail: `owner@${slug}.test` },
    testActor,
  );
  const scim = await issueCredential(
    ctx.sql,
    ctx.config.serverSecret,
    { organizationId: organization.id, kind: 'scim', name: 'idp' },
    testActor,
  );
  const admin = await issueCredential(
    ctx.sql,
    ctx.config.serverSecret,
    { organizationId: organization.id, kind: 'admin', name: 'setup', roles: ['owner'] },
    testActor,
  );
  return { organization, owner, scimToken: scim.secret, adminKey: admin.secret };
}
