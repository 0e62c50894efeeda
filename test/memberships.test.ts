import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../src/context.ts';
import { ensureAccount } from '../src/core/accounts.ts';
import { systemActor, type Actor } from '../src/core/actor.ts';
import { DomainError } from '../src/core/errors.ts';
import {
  effectivePermissions,
  getMembership,
  joinOrganization,
  leaveOrganization,
  reactivateMember,
  removeMember,
  setRoles,
  suspendMember,
} from '../src/core/memberships.ts';
import { createOrganization } from '../src/core/organizations.ts';
import { createCustomRole } from '../src/core/roles.ts';
import { createTestContext } from './support/context.ts';

const admin: Actor = { type: 'admin_key', id: 'k1', name: 'setup key', channel: 'admin' };
const scim: Actor = { type: 'scim_token', id: 't1', name: 'okta', channel: 'scim' };

let ctx: AppContext;
let seq = 0;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => ctx.database.close());

async function newOrg() {
  seq += 1;
  const { organization, owner } = await createOrganization(
    ctx.sql,
    { name: `Org ${seq}`, ownerEmail: `owner${seq}@example.com` },
    systemActor('cli'),
  );
  return { org: organization, owner };
}

async function newMember(orgId: string, email: string, roles?: string[]) {
  const account = await ensureAccount(ctx.sql, { email });
  await joinOrganization(ctx.sql, { organizationId: orgId, accountId: account.id, source: 'admin', roles }, admin);
  return account;
}

async function refusal(promise: Promise<unknown>): Promise<DomainError> {
  const error = await promise.then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(DomainError);
  return error as DomainError;
}

describe('organizations and accounts', () => {
  it('creates an organization with its first owner and derives the slug', async () => {
    const { org, owner } = await newOrg();
    expect(org.slug).toBe(`org-${seq}`);
    const m = await getMembership(ctx.sql, org.id, owner.id);
    expect(m).toMatchObject({ status: 'active', source: 'admin', roles: ['owner'] });
  });

  it('refuses a taken slug and an invalid one, creating nothing', async () => {
    const { org } = await newOrg();
    expect((await refusal(createOrganization(ctx.sql, { name: 'x', slug: org.slug, ownerEmail: 'dup-slug@example.com' }, admin))).code).toBe('conflict');
    expect((await refusal(createOrganization(ctx.sql, { name: 'x', slug: 'Bad Slug', ownerEmail: 'bad-slug@example.com' }, admin))).code).toBe('invalid');
    const [row] = await ctx.sql`select count(*)::int as n from accounts where email in ('dup-slug@example.com', 'bad-slug@example.com')`;
    expect(row!.n).toBe(0);
  });

  it('identifies a person by email, case-insensitively', async () => {
    const a = await ensureAccount(ctx.sql, { email: 'Jane.Doe@Example.com', givenName: 'Jane' });
    const b = await ensureAccount(ctx.sql, { email: ' jane.doe@example.COM ', givenName: 'Janet', familyName: 'Doe' });
    expect(b.id).toBe(a.id);
    expect(b.givenName).toBe('Jane');
    expect(b.familyName).toBe('Doe');
    expect((await refusal(ensureAccount(ctx.sql, { email: 'not-an-email' }))).code).toBe('invalid');
  });
});

describe('membership life cycle', () => {
  it('joins with the default role, is idempotent, audited and announced', async () => {
    const { org } = await newOrg();
    const account = await ensureAccount(ctx.sql, { email: `joiner${seq}@example.com` });
    const first = await joinOrganization(ctx.sql, { organizationId: org.id, accountId: account.id, source: 'scim' }, scim);
    const again = await joinOrganization(ctx.sql, { organizationId: org.id, accountId: account.id, source: 'sso' }, scim);
    expect(first).toMatchObject({ joined: true, membership: { status: 'active', source: 'scim', roles: ['member'] } });
    expect(again).toMatchObject({ joined: false, membership: { source: 'scim' } });
    const audit = await ctx.sql`select * from audit_log where organization_id = ${org.id} and target_id = ${account.id}`;
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ action: 'member.joined', actorName: 'okta', channel: 'scim' });
    const events = await ctx.sql`select type, payload from outbox where organization_id = ${org.id} and payload->>'accountId' = ${account.id}`;
    expect(events.map((e) => e.type)).toEqual(['member.joined']);
  });

  it('suspends (no permissions, no rejoin) and reactivates', async () => {
    const { org } = await newOrg();
    const account = await newMember(org.id, `susp${seq}@example.com`);
    const suspended = await suspendMember(ctx.sql, org.id, account.id, scim);
    expect(suspended.status).toBe('suspended');
    expect(await effectivePermissions(ctx.sql, suspended)).toEqual([]);
    expect((await refusal(joinOrganization(ctx.sql, { organizationId: org.id, accountId: account.id, source: 'sso' }, admin))).code).toBe('rule_violation');
    const back = await reactivateMember(ctx.sql, org.id, account.id, scim);
    expect(back.status).toBe('active');
    expect(await effectivePermissions(ctx.sql, back)).toEqual(['members:view', 'workspaces:create']);
  });

  it('removal ends the membership and its group memberships; the account stays; a later join starts fresh', async () => {
    const { org } = await newOrg();
    const account = await newMember(org.id, `rm${seq}@example.com`, ['admin']);
    const [group] = await ctx.sql`insert into groups (organization_id, source, display_name) values (${org.id}, 'local', 'eng') returning id`;
    await ctx.sql`insert into group_members (organization_id, group_id, account_id) values (${org.id}, ${group!.id}, ${account.id})`;
    expect((await removeMember(ctx.sql, org.id, account.id, admin)).status).toBe('removed');
    expect(await ctx.sql`select 1 from group_members where account_id = ${account.id}`).toHaveLength(0);
    expect(await ctx.sql`select 1 from accounts where id = ${account.id}`).toHaveLength(1);
    expect((await refusal(removeMember(ctx.sql, org.id, account.id, admin))).code).toBe('not_found');
    const rejoined = await joinOrganization(ctx.sql, { organizationId: org.id, accountId: account.id, source: 'sso' }, admin);
    expect(rejoined.membership).toMatchObject({ status: 'active', source: 'sso', roles: ['member'] });
  });

  it('nobody removes themselves through the admin API; they leave instead', async () => {
    const { org } = await newOrg();
    const account = await newMember(org.id, `self${seq}@example.com`, ['admin']);
    const self: Actor = { type: 'account', id: account.id, name: account.email, channel: 'admin' };
    const error = await refusal(removeMember(ctx.sql, org.id, account.id, self));
    expect(error.message).toMatch(/cannot remove yourself/);
    expect((await leaveOrganization(ctx.sql, org.id, account.id, self)).status).toBe('removed');
  });
});

describe('roles and the last owner', () => {
  it('the last owner can be neither removed, demoted, suspended nor leave', async () => {
    const { org, owner } = await newOrg();
    for (const attempt of [
      () => removeMember(ctx.sql, org.id, owner.id, admin),
      () => setRoles(ctx.sql, org.id, owner.id, ['admin'], admin),
      () => suspendMember(ctx.sql, org.id, owner.id, admin),
      () => leaveOrganization(ctx.sql, org.id, owner.id, admin),
    ]) {
      const error = await refusal(attempt());
      expect(error.code).toBe('rule_violation');
      expect(error.message).toMatch(/last owner/);
    }
    expect(await getMembership(ctx.sql, org.id, owner.id)).toMatchObject({ status: 'active', roles: ['owner'] });
  });

  it('with a second owner, one may go', async () => {
    const { org, owner } = await newOrg();
    await newMember(org.id, `owner2-${seq}@example.com`, ['owner']);
    expect((await setRoles(ctx.sql, org.id, owner.id, ['member'], admin)).roles).toEqual(['member']);
  });

  it('two owners demoting each other at once: exactly one succeeds', async () => {
    const { org, owner } = await newOrg();
    const second = await newMember(org.id, `race${seq}@example.com`, ['owner']);
    const results = await Promise.allSettled([
      setRoles(ctx.sql, org.id, owner.id, ['member'], admin),
      setRoles(ctx.sql, org.id, second.id, ['member'], admin),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const [row] = await ctx.sql`select count(*)::int as n from memberships where organization_id = ${org.id} and 'owner' = any(roles)`;
    expect(row!.n).toBe(1);
  });

  it('an owner role granted by a group mapping counts as an owner', async () => {
    const { org, owner } = await newOrg();
    const mapped = await newMember(org.id, `mapped${seq}@example.com`);
    await ctx.sql`update memberships set mapped_roles = '{owner}' where organization_id = ${org.id} and account_id = ${mapped.id}`;
    await setRoles(ctx.sql, org.id, owner.id, ['member'], admin);
    const m = await getMembership(ctx.sql, org.id, mapped.id);
    expect(await effectivePermissions(ctx.sql, m!)).toContain('billing:manage');
  });

  it('refuses unknown and empty roles; combines custom role permissions', async () => {
    const { org } = await newOrg();
    const account = await newMember(org.id, `roles${seq}@example.com`);
    expect((await refusal(setRoles(ctx.sql, org.id, account.id, ['wizard'], admin))).message).toMatch(/unknown role/);
    expect((await refusal(setRoles(ctx.sql, org.id, account.id, [], admin))).code).toBe('invalid');
    await createCustomRole(ctx.sql, org.id, { key: 'auditor', name: 'Auditor', permissions: ['billing:manage'] }, admin);
    expect((await refusal(createCustomRole(ctx.sql, org.id, { key: 'x', name: 'X', permissions: ['root'] }, admin))).code).toBe('invalid');
    const m = await setRoles(ctx.sql, org.id, account.id, ['viewer', 'auditor'], admin);
    expect(await effectivePermissions(ctx.sql, m)).toEqual(['members:view', 'billing:manage', 'workspaces:view_all']);
    const [event] = await ctx.sql`select payload from outbox where organization_id = ${org.id} and type = 'member.role_changed'`;
    expect(event!.payload).toMatchObject({ accountId: account.id, from: ['member'], to: ['auditor', 'viewer'] });
  });
});
