import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../src/context.ts';
import { systemActor } from '../src/core/actor.ts';
import { issueCredential, listCredentials, revokeCredential, verifyCredential } from '../src/core/credentials.ts';
import { createOrganization } from '../src/core/organizations.ts';
import { connect } from '../src/storage/database.ts';
import { createTestContext } from './support/context.ts';
import type { TestDatabase } from './support/db.ts';

const actor = systemActor('cli');
let ctx: AppContext;
let orgId: string;

beforeAll(async () => {
  ctx = await createTestContext();
  orgId = (await createOrganization(ctx.sql, { name: 'Creds', ownerEmail: 'o@creds.test' }, actor)).organization.id;
});
afterAll(async () => ctx.database.close());

describe('secrets at rest', () => {
  it('are shown once and stored only as a keyed hash', async () => {
    const issued = await issueCredential(
      ctx.sql,
      ctx.config.serverSecret,
      { organizationId: orgId, kind: 'scim', name: 'okta' },
      actor,
    );
    expect(issued.secret).toMatch(/^osscim_[A-Za-z0-9_-]{43}$/);
    const dump = JSON.stringify(await ctx.sql`select * from credentials`);
    expect(dump).not.toContain(issued.secret);
    expect(dump).not.toContain(issued.secret.slice(7, 30));
    expect(JSON.stringify(await ctx.sql`select * from audit_log`)).not.toContain(issued.secret);
    expect((await listCredentials(ctx.sql, orgId, 'scim'))[0]).not.toHaveProperty('secret');
  });

  it('verify only with the right secret, kind and server secret; record last use', async () => {
    const issued = await issueCredential(
      ctx.sql,
      ctx.config.serverSecret,
      { organizationId: orgId, kind: 'admin', name: 'ci' },
      actor,
    );
    const found = await verifyCredential(ctx.sql, ctx.config.serverSecret, 'admin', issued.secret);
    expect(found).toMatchObject({ id: issued.id, organizationId: orgId, roles: ['admin'] });
    const [row] = await ctx.sql`select last_used_at from credentials where id = ${issued.id}`;
    expect(row!.lastUsedAt).toBeInstanceOf(Date);
    expect(await verifyCredential(ctx.sql, ctx.config.serverSecret, 'scim', issued.secret)).toBeNull();
    expect(
      await verifyCredential(ctx.sql, 'another-server-secret-0123456789abcdef', 'admin', issued.secret),
    ).toBeNull();
    expect(await verifyCredential(ctx.sql, ctx.config.serverSecret, 'admin', issued.secret + 'x')).toBeNull();
  });

  // A second pool beside the test's own: the embedded database takes one connection at a time.
  it.skipIf(!process.env.DATABASE_URL)('a burst with one SCIM token reads it once', async () => {
    const issued = await issueCredential(
      ctx.sql,
      ctx.config.serverSecret,
      { organizationId: orgId, kind: 'scim', name: 'burst' },
      actor,
    );
    const sent: string[] = [];
    const pool = connect((ctx.database as TestDatabase).url, 4, { onQuery: (query) => sent.push(query) });
    try {
      const verified = await Promise.all(
        Array.from({ length: 16 }, () => verifyCredential(pool, ctx.config.serverSecret, 'scim', issued.secret)),
      );
      expect(verified.map((c) => c?.id)).toEqual(Array(16).fill(issued.id));
      expect(sent.filter((q) => /from credentials/.test(q))).toHaveLength(1);
      expect(sent.filter((q) => /update credentials set last_used_at/.test(q))).toHaveLength(1);
    } finally {
      await pool.end();
    }
  });

  it('revoked and expired credentials stop working; several live ones overlap', async () => {
    const a = await issueCredential(
      ctx.sql,
      ctx.config.serverSecret,
      { organizationId: orgId, kind: 'scim', name: 'a' },
      actor,
    );
    const expiresAt = new Date(Date.now() + 300);
    const b = await issueCredential(
      ctx.sql,
      ctx.config.serverSecret,
      { organizationId: orgId, kind: 'scim', name: 'b', expiresAt },
      actor,
    );
    expect(await verifyCredential(ctx.sql, ctx.config.serverSecret, 'scim', a.secret)).not.toBeNull();
    await revokeCredential(ctx.sql, orgId, a.id, actor);
    expect(await verifyCredential(ctx.sql, ctx.config.serverSecret, 'scim', a.secret)).toBeNull();
    expect(await verifyCredential(ctx.sql, ctx.config.serverSecret, 'scim', b.secret)).not.toBeNull();
    // Expiry holds even for a token verified a moment ago (and so remembered).
    await new Promise((resolve) => setTimeout(resolve, expiresAt.getTime() - Date.now() + 50));
    expect(await verifyCredential(ctx.sql, ctx.config.serverSecret, 'scim', b.secret)).toBeNull();
  });

  it("refuse bad input: past expiry, unknown role, another organization's credential", async () => {
    await expect(
      issueCredential(
        ctx.sql,
        ctx.config.serverSecret,
        { organizationId: orgId, kind: 'scim', name: 'x', expiresAt: new Date(Date.now() - 1000) },
        actor,
      ),
    ).rejects.toThrow(/expiry/);
    await expect(
      issueCredential(
        ctx.sql,
        ctx.config.serverSecret,
        { organizationId: orgId, kind: 'admin', name: 'x', roles: ['wizard'] },
        actor,
      ),
    ).rejects.toThrow(/unknown role/);
    const other = (await createOrganization(ctx.sql, { name: 'Other', ownerEmail: 'o@other.test' }, actor)).organization
      .id;
    const theirs = await issueCredential(
      ctx.sql,
      ctx.config.serverSecret,
      { organizationId: other, kind: 'scim', name: 'x' },
      actor,
    );
    await expect(revokeCredential(ctx.sql, orgId, theirs.id, actor)).rejects.toThrow(/not found/);
    await expect(revokeCredential(ctx.sql, orgId, 'not-a-uuid', actor)).rejects.toThrow(/not found/);
  });
});
