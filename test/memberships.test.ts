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
import { createGroup } from '../src/core/groups.ts';
import { inviteMembers } from '../src/core/invitations.ts';
import { createOrganization, findOrganization, updateOrganizationSettings } from '../src/core/organizations.ts';
import { PERMISSIONS } from '../src/core/permissions.ts';
import { BUILT_IN_ROLES, createCustomRole } from '../src/core/roles.ts';
import { configureMembershipPolicy } from '../src/core/policy.ts';
import { createTestContext } from './support/context.ts';

/** An owner-level admin key: holds every permission. */
const admin: Actor = { type: 'admin_key', id: 'k1', name: 'setup key', channel: 'admin', permissions: PERMISSIONS };
/** A key with the built-in admin role: members:manage, but not billing:manage. */
const adminRole: Actor = {
  type: 'admin_key',
  id: 'k2',
  name: 'admin key',
  channel: 'admin',
  permissions: BUILT_IN_ROLES.admin!.permissions,
};
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
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
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
    expect(
      (
        await refusal(
          createOrganization(ctx.sql, { name: 'x', slug: org.slug, ownerEmail: 'dup-slug@example.com' }, admin),
        )
      ).code,
    ).toBe('conflict');
    expect(
      (
        await refusal(
          createOrganization(ctx.sql, { name: 'x', slug: 'Bad Slug', ownerEmail: 'bad-slug@example.com' }, admin),
        )
      ).code,
    ).toBe('invalid');
    const [row] =
      await ctx.sql`select count(*)::int as n from accounts where email in ('dup-slug@example.com', 'bad-slug@example.com')`;
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
    const first = await joinOrganization(
      ctx.sql,
      { organizationId: org.id, accountId: account.id, source: 'scim' },
      scim,
    );
    const again = await joinOrganization(
      ctx.sql,
      { organizationId: org.id, accountId: account.id, source: 'sso' },
      scim,
    );
    expect(first).toMatchObject({ joined: true, membership: { status: 'active', source: 'scim', roles: ['member'] } });
    expect(again).toMatchObject({ joined: false, membership: { source: 'scim' } });
    const audit =
      await ctx.sql`select * from audit_log where organization_id = ${org.id} and target_id = ${account.id}`;
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ action: 'member.joined', actorName: 'okta', channel: 'scim' });
    const events =
      await ctx.sql`select type, payload from outbox where organization_id = ${org.id} and payload->>'accountId' = ${account.id}`;
    expect(events.map((e) => e.type)).toEqual(['member.joined']);
  });

  it('suspends (no permissions, no rejoin) and reactivates', async () => {
    const { org } = await newOrg();
    const account = await newMember(org.id, `susp${seq}@example.com`);
    const suspended = await suspendMember(ctx.sql, org.id, account.id, scim);
    expect(suspended.status).toBe('suspended');
    expect(await effectivePermissions(ctx.sql, suspended)).toEqual([]);
    expect(
      (
        await refusal(
          joinOrganization(ctx.sql, { organizationId: org.id, accountId: account.id, source: 'sso' }, admin),
        )
      ).code,
    ).toBe('rule_violation');
    const back = await reactivateMember(ctx.sql, org.id, account.id, scim);
    expect(back.status).toBe('active');
    expect(await effectivePermissions(ctx.sql, back)).toEqual(['members:view', 'workspaces:create']);
  });

  it('removal ends the membership and its group memberships; the account stays; a later join starts fresh', async () => {
    const { org } = await newOrg();
    const account = await newMember(org.id, `rm${seq}@example.com`, ['admin']);
    const [group] =
      await ctx.sql`insert into groups (organization_id, source, display_name) values (${org.id}, 'local', 'eng') returning id`;
    await ctx.sql`insert into group_members (organization_id, group_id, account_id) values (${org.id}, ${group!.id}, ${account.id})`;
    expect((await removeMember(ctx.sql, org.id, account.id, admin)).status).toBe('removed');
    expect(await ctx.sql`select 1 from group_members where account_id = ${account.id}`).toHaveLength(0);
    expect(await ctx.sql`select 1 from accounts where id = ${account.id}`).toHaveLength(1);
    expect((await refusal(removeMember(ctx.sql, org.id, account.id, admin))).code).toBe('not_found');
    const rejoined = await joinOrganization(
      ctx.sql,
      { organizationId: org.id, accountId: account.id, source: 'sso' },
      admin,
    );
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
    const [row] =
      await ctx.sql`select count(*)::int as n from memberships where organization_id = ${org.id} and 'owner' = any(roles)`;
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
    await createCustomRole(
      ctx.sql,
      org.id,
      { key: 'auditor', name: 'Auditor', permissions: ['billing:manage'] },
      admin,
    );
    expect(
      (await refusal(createCustomRole(ctx.sql, org.id, { key: 'x', name: 'X', permissions: ['root'] }, admin))).code,
    ).toBe('invalid');
    const m = await setRoles(ctx.sql, org.id, account.id, ['viewer', 'auditor'], admin);
    expect(await effectivePermissions(ctx.sql, m)).toEqual(['members:view', 'billing:manage', 'workspaces:view_all']);
    const [event] =
      await ctx.sql`select payload from outbox where organization_id = ${org.id} and type = 'member.role_changed'`;
    expect(event!.payload).toMatchObject({ accountId: account.id, from: ['member'], to: ['auditor', 'viewer'] });
  });
});

describe('privilege escalation: a caller grants, takes away and manages only what it holds', () => {
  it("an admin cannot grant owner (to itself or others), change an owner's roles or remove an owner; nothing changes", async () => {
    const { org, owner } = await newOrg();
    const self = await newMember(org.id, `self-admin${seq}@example.com`, ['admin']);
    const other = await newMember(org.id, `other${seq}@example.com`);
    const asSelf: Actor = {
      type: 'account',
      id: self.id,
      name: self.email,
      channel: 'admin',
      permissions: BUILT_IN_ROLES.admin!.permissions,
    };
    for (const [attempt, text] of [
      [() => setRoles(ctx.sql, org.id, self.id, ['admin', 'owner'], asSelf), /grant or take away the role\(s\) owner/],
      [() => setRoles(ctx.sql, org.id, other.id, ['owner'], adminRole), /grant or take away the role\(s\) owner/],
      [() => setRoles(ctx.sql, org.id, other.id, ['billing'], adminRole), /billing/],
      [
        () => setRoles(ctx.sql, org.id, owner.id, ['owner', 'viewer'], adminRole),
        /change the roles of a member with the role\(s\) owner/,
      ],
      [() => removeMember(ctx.sql, org.id, owner.id, adminRole), /remove a member with the role\(s\) owner/],
    ] as const) {
      const error = await refusal(attempt());
      expect(error.code).toBe('forbidden');
      expect(error.details).toEqual({ missing: ['billing:manage'] });
      expect(error.message).toMatch(/^missing permission: billing:manage/);
      expect(error.message).toMatch(text);
    }
    expect(await getMembership(ctx.sql, org.id, self.id)).toMatchObject({ roles: ['admin'] });
    expect(await getMembership(ctx.sql, org.id, other.id)).toMatchObject({ roles: ['member'] });
    expect(await getMembership(ctx.sql, org.id, owner.id)).toMatchObject({ status: 'active', roles: ['owner'] });
    const [changes] =
      await ctx.sql`select count(*)::int as n from audit_log where organization_id = ${org.id} and action in ('member.role_changed', 'member.removed')`;
    expect(changes!.n).toBe(0);
  });

  it('an admin may grant and take away the roles it holds, and manage members below it', async () => {
    const { org } = await newOrg();
    const other = await newMember(org.id, `below${seq}@example.com`);
    expect((await setRoles(ctx.sql, org.id, other.id, ['admin', 'viewer'], adminRole)).roles).toEqual([
      'admin',
      'viewer',
    ]);
    expect((await setRoles(ctx.sql, org.id, other.id, ['member'], adminRole)).roles).toEqual(['member']);
    expect((await removeMember(ctx.sql, org.id, other.id, adminRole)).status).toBe('removed');
  });

  it('a member whose owner role comes from a mapping is an owner too; a key without permissions holds none', async () => {
    const { org } = await newOrg();
    const mapped = await newMember(org.id, `mapped-owner${seq}@example.com`);
    await ctx.sql`update memberships set mapped_roles = '{owner}' where organization_id = ${org.id} and account_id = ${mapped.id}`;
    expect((await refusal(removeMember(ctx.sql, org.id, mapped.id, adminRole))).details).toEqual({
      missing: ['billing:manage'],
    });
    const bare: Actor = { type: 'admin_key', id: 'k3', name: 'bare', channel: 'admin' };
    const plain = await newMember(org.id, `plain${seq}@example.com`);
    expect((await refusal(setRoles(ctx.sql, org.id, plain.id, ['viewer'], bare))).code).toBe('forbidden');
  });

  it('system actors are not limited: the IdP may remove an owner', async () => {
    const { org } = await newOrg();
    const second = await newMember(org.id, `owner-scim${seq}@example.com`, ['owner']);
    expect((await removeMember(ctx.sql, org.id, second.id, scim)).status).toBe('removed');
  });

  it('invitations: an admin cannot invite with owner, nor with a default role beyond it', async () => {
    const { org } = await newOrg();
    const error = await refusal(
      inviteMembers(
        ctx.sql,
        ctx.config.serverSecret,
        org.id,
        [{ email: `a${seq}@x.test` }, { email: `b${seq}@x.test`, roles: ['owner'] }],
        adminRole,
      ),
    );
    expect(error).toMatchObject({ code: 'forbidden', details: { missing: ['billing:manage'] } });
    await ctx.sql`update organizations set default_role = 'billing' where id = ${org.id}`;
    expect(
      (await refusal(inviteMembers(ctx.sql, ctx.config.serverSecret, org.id, [{ email: `c${seq}@x.test` }], adminRole)))
        .code,
    ).toBe('forbidden');
    expect(await ctx.sql`select 1 from invitations where organization_id = ${org.id}`).toHaveLength(0);
  });
});

describe('joining with a pending invitation (SCIM, SSO): the one acceptance', () => {
  const sso = (account: { id: string; email: string }): Actor => ({
    type: 'account',
    id: account.id,
    name: account.email,
    channel: 'sso',
  });

  it('accepts it with the invited roles and local groups, audited and announced as invite.accepted', async () => {
    const { org } = await newOrg();
    const group = await createGroup(ctx.sql, { organizationId: org.id, source: 'local', displayName: 'Design' }, admin);
    const [result] = await inviteMembers(
      ctx.sql,
      ctx.config.serverSecret,
      org.id,
      [{ email: `sso-invitee${seq}@x.test`, roles: ['viewer'], groupIds: [group.id] }],
      admin,
    );
    if (!result!.invited) throw new Error(result!.message);
    const account = await ensureAccount(ctx.sql, { email: result!.email });
    const joined = await joinOrganization(
      ctx.sql,
      { organizationId: org.id, accountId: account.id, source: 'sso' },
      sso(account),
    );
    expect(joined).toMatchObject({
      joined: true,
      membership: { status: 'active', roles: ['viewer'] },
      invitation: { id: result!.invitation.id, groupIds: [group.id] },
    });
    expect(
      await ctx.sql`select 1 from group_members where group_id = ${group.id} and account_id = ${account.id}`,
    ).toHaveLength(1);
    const [inv] = await ctx.sql`select status, accepted_at from invitations where id = ${result!.invitation.id}`;
    expect(inv!.status).toBe('accepted');
    const [audit] =
      await ctx.sql`select channel, actor_name, details from audit_log where action = 'invite.accepted' and target_id = ${result!.invitation.id}`;
    expect(audit).toMatchObject({
      channel: 'sso',
      actorName: account.email,
      details: { email: account.email, accountId: account.id, groupIds: [group.id], via: 'sso' },
    });
    const events = await ctx.sql`
      select type from outbox where organization_id = ${org.id} and (payload->>'accountId' = ${account.id} or payload->'added' ? ${account.id}) order by id`;
    expect(events.map((e) => e.type)).toEqual([
      'invite.created',
      'member.joined',
      'group.members_changed',
      'invite.accepted',
    ]);
  });

  it('one past its expiry (not swept yet) is expired as the reconciler would, with audit and event; the person joins as if never invited', async () => {
    const { org } = await newOrg();
    const [result] = await inviteMembers(
      ctx.sql,
      ctx.config.serverSecret,
      org.id,
      [{ email: `late${seq}@x.test`, roles: ['viewer'] }],
      admin,
    );
    if (!result!.invited) throw new Error(result!.message);
    await ctx.sql`update invitations set expires_at = now() - interval '1 minute' where id = ${result!.invitation.id}`;
    const account = await ensureAccount(ctx.sql, { email: result!.email });
    const joined = await joinOrganization(
      ctx.sql,
      { organizationId: org.id, accountId: account.id, source: 'scim' },
      scim,
    );
    expect(joined).toMatchObject({ joined: true, membership: { status: 'active', roles: ['member'], source: 'scim' } });
    expect(joined.invitation).toBeUndefined();
    expect((await ctx.sql`select status from invitations where id = ${result!.invitation.id}`)[0]!.status).toBe(
      'expired',
    );
    const audit =
      await ctx.sql`select channel, details from audit_log where action = 'invite.expired' and target_id = ${result!.invitation.id}`;
    expect(audit).toEqual([{ channel: 'scim', details: { email: account.email, accountId: account.id } }]);
    const [event] =
      await ctx.sql`select payload from outbox where type = 'invite.expired' and payload->>'invitationId' = ${result!.invitation.id}`;
    expect(event!.payload).toMatchObject({
      invitationId: result!.invitation.id,
      email: account.email,
      accountId: account.id,
    });
    expect(
      await ctx.sql`select 1 from audit_log where action = 'invite.accepted' and target_id = ${result!.invitation.id}`,
    ).toHaveLength(0);
  });

  it('under the single-organization policy (an organization setting), a person who belongs elsewhere cannot join (SSO, verified domain, SCIM); nothing changes', async () => {
    const { org } = await newOrg();
    const { owner: elsewhere } = await newOrg();
    await updateOrganizationSettings(ctx.sql, org.id, { singleOrganization: true }, admin);
    for (const source of ['sso', 'scim'] as const) {
      const error = await refusal(
        joinOrganization(ctx.sql, { organizationId: org.id, accountId: elsewhere.id, source }, sso(elsewhere)),
      );
      expect(error.code).toBe('conflict');
      expect(error.message).toMatch(
        /already belongs to another organization \(a member there\).*SINGLE_ORGANIZATION_POLICY/,
      );
    }
    expect(await getMembership(ctx.sql, org.id, elsewhere.id)).toBeNull();
    // Off (the default), the same join works.
    await updateOrganizationSettings(ctx.sql, org.id, { singleOrganization: false }, admin);
    expect(
      (
        await joinOrganization(
          ctx.sql,
          { organizationId: org.id, accountId: elsewhere.id, source: 'sso' },
          sso(elsewhere),
        )
      ).joined,
    ).toBe(true);
  });

  it('the rule of the organization a person belongs to holds too: its members join no other organization', async () => {
    const { org: strict, owner } = await newOrg();
    const { org: open } = await newOrg();
    await updateOrganizationSettings(ctx.sql, strict.id, { singleOrganization: true }, admin);
    const error = await refusal(
      joinOrganization(ctx.sql, { organizationId: open.id, accountId: owner.id, source: 'scim' }, scim),
    );
    expect(error.code).toBe('conflict');
    expect(await getMembership(ctx.sql, open.id, owner.id)).toBeNull();
  });

  it('a new organization starts with the configured SINGLE_ORGANIZATION_POLICY; existing ones keep theirs', async () => {
    const { org: before } = await newOrg();
    configureMembershipPolicy({ singleOrganization: true });
    try {
      const { org: after } = await newOrg();
      expect(after.singleOrganization).toBe(true);
    } finally {
      configureMembershipPolicy({ singleOrganization: false });
    }
    expect((await findOrganization(ctx.sql, before.id))!.singleOrganization).toBe(false);
  });
});
