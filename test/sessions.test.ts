import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../src/context.ts';
import { ensureAccount } from '../src/core/accounts.ts';
import type { Actor } from '../src/core/actor.ts';
import { getMembership, joinOrganization, reactivateMember, suspendMember } from '../src/core/memberships.ts';
import { createSession, endSession, resolveSession } from '../src/core/sessions.ts';
import { createTestContext, createTestOrganization } from './support/context.ts';

const actor: Actor = { type: 'admin_key', id: 'k', name: 'key', channel: 'admin' };
let ctx: AppContext;
let orgId: string;

beforeAll(async () => {
  ctx = await createTestContext();
  orgId = (await createTestOrganization(ctx, 'sessions')).organization.id;
});
afterAll(async () => ctx.database.close());

describe('sessions', () => {
  it('resolve while the membership is active; suspension and logout end them', async () => {
    const a = await ensureAccount(ctx.sql, { email: 's1@sessions.test' });
    await joinOrganization(ctx.sql, { organizationId: orgId, accountId: a.id, source: 'sso' }, actor);
    const { secret } = await createSession(ctx.sql, ctx.config.serverSecret, {
      organizationId: orgId,
      accountId: a.id,
      via: 'saml',
    });
    expect(JSON.stringify(await ctx.sql`select * from sessions`)).not.toContain(secret);
    expect((await resolveSession(ctx.sql, ctx.config.serverSecret, secret))?.membership.accountId).toBe(a.id);
    await suspendMember(ctx.sql, orgId, a.id, actor);
    await reactivateMember(ctx.sql, orgId, a.id, actor);
    // Suspension revoked it for good; reactivation does not bring old sessions back.
    expect(await resolveSession(ctx.sql, ctx.config.serverSecret, secret)).toBeNull();
    const again = await createSession(ctx.sql, ctx.config.serverSecret, {
      organizationId: orgId,
      accountId: a.id,
      via: 'saml',
    });
    await endSession(ctx.sql, ctx.config.serverSecret, again.secret);
    expect(await resolveSession(ctx.sql, ctx.config.serverSecret, again.secret)).toBeNull();
  });

  it('expire', async () => {
    const a = await ensureAccount(ctx.sql, { email: 's2@sessions.test' });
    await joinOrganization(ctx.sql, { organizationId: orgId, accountId: a.id, source: 'sso' }, actor);
    const { secret } = await createSession(ctx.sql, ctx.config.serverSecret, {
      organizationId: orgId,
      accountId: a.id,
      via: 'saml',
      ttlSeconds: 1,
    });
    await ctx.sql`update sessions set expires_at = now() - interval '1 second'`;
    expect(await resolveSession(ctx.sql, ctx.config.serverSecret, secret)).toBeNull();
  });
});

describe('joining with a pending invitation', () => {
  async function invite(email: string, expiresIn: string) {
    const a = await ensureAccount(ctx.sql, { email });
    await ctx.sql`insert into memberships (organization_id, account_id, status, source, roles) values (${orgId}, ${a.id}, 'invited', 'invite', '{billing}')`;
    await ctx.sql`insert into invitations (organization_id, account_id, email, status, token_hash, invited_by, expires_at)
                  values (${orgId}, ${a.id}, ${email}, 'pending', ${'h-' + email}, 'test', now() + ${expiresIn}::interval)`;
    return a;
  }

  it('accepts the invitation and keeps the roles chosen when inviting', async () => {
    const a = await invite('inv1@sessions.test', '1 hour');
    const { membership } = await joinOrganization(
      ctx.sql,
      { organizationId: orgId, accountId: a.id, source: 'scim' },
      actor,
    );
    expect(membership).toMatchObject({ status: 'active', source: 'invite', roles: ['billing'] });
    const [inv] = await ctx.sql`select status from invitations where account_id = ${a.id}`;
    expect(inv).toEqual({ status: 'accepted' });
  });

  it('an expired invitation grants nothing: the person joins fresh with the default role', async () => {
    const a = await invite('inv2@sessions.test', '-1 hour');
    const { membership } = await joinOrganization(
      ctx.sql,
      { organizationId: orgId, accountId: a.id, source: 'sso' },
      actor,
    );
    expect(membership).toMatchObject({ status: 'active', source: 'sso', roles: ['member'] });
    expect((await ctx.sql`select status from invitations where account_id = ${a.id}`)[0]!.status).toBe('expired');
    expect((await getMembership(ctx.sql, orgId, a.id))?.roles).toEqual(['member']);
  });
});
