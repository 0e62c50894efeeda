import type { Express } from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import type { AppContext } from '../../src/context.ts';
import type { Actor } from '../../src/core/actor.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import { emitEvent } from '../../src/core/events.ts';
import { changeGroupMembers, createGroup } from '../../src/core/groups.ts';
import { getMembership, joinOrganization } from '../../src/core/memberships.ts';
import { PERMISSIONS } from '../../src/core/permissions.ts';
import { createGroupRoleMapping, deleteGroupRoleMapping } from '../../src/core/role-mapping.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { createWebhookEndpoint, setWebhookEndpointEnabled } from '../../src/core/webhook-endpoints.ts';
import { OUTBOX_CHANNEL } from '../../src/sync/reconciler.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { started, untilWaitingOrEnded } from '../support/lock-waits.ts';

const admin: Actor = { type: 'admin_key', id: 'k', name: 'key', channel: 'admin' };
const mapper: Actor = { ...admin, permissions: PERMISSIONS };
const scim: Actor = { type: 'scim_token', id: 't', name: 'okta', channel: 'scim' };
let ctx: AppContext;
let app: Express;

beforeAll(async () => {
  ctx = await createTestContext({ WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
  app = createApp(ctx);
});
afterAll(async () => ctx.database.close());

/** Whether the event of `type` that `emitEvent` writes now is written dispatched. */
async function writtenDispatched(organizationId: string, type: string): Promise<boolean> {
  await emitEvent(ctx.sql, organizationId, type, { probe: true }, admin);
  const [row] = await ctx.sql<{ dispatchedAt: Date | null }[]>`
    select dispatched_at from outbox where organization_id = ${organizationId} and type = ${type}
    order by id desc limit 1`;
  return row!.dispatchedAt !== null;
}

describe('events nothing in orgsync acts on', () => {
  it('are written dispatched; those role mapping, an email or an enabled webhook endpoint waits for are not', async () => {
    const { organization } = await createTestOrganization(ctx, 'consumers');
    const id = organization.id;
    const types = [
      'user.updated',
      'member.suspended',
      'member.joined',
      'group.members_changed',
      'mapping.created',
      'invite.created',
      'domain.verification_lost',
    ];
    const written = async () =>
      Object.fromEntries(await Promise.all(types.map(async (t) => [t, await writtenDispatched(id, t)] as const)));
    // Mapping changes and the emails always wait for the reconciler. A join or a group membership
    // change waits for role mapping only where it could change roles (below); here it cannot.
    const alwaysWaiting = { 'mapping.created': false, 'invite.created': false, 'domain.verification_lost': false };
    const memberAndGroupEvents = { 'member.suspended': true, 'member.joined': true, 'group.members_changed': true };
    expect(await written()).toEqual({ 'user.updated': true, ...memberAndGroupEvents, ...alwaysWaiting });

    // A webhook endpoint receives member and group events while it is enabled.
    const endpoint = await createWebhookEndpoint(
      ctx.sql,
      ctx.config.serverSecret,
      { organizationId: id, url: 'http://127.0.0.1:9/hook' },
      admin,
      { allowPrivateNetworks: true },
    );
    const waitingForWebhook = { 'member.suspended': false, 'member.joined': false, 'group.members_changed': false };
    expect(await written()).toEqual({ 'user.updated': true, ...waitingForWebhook, ...alwaysWaiting });
    await setWebhookEndpointEnabled(ctx.sql, id, endpoint.id, false, admin);
    expect(await written()).toEqual({ 'user.updated': true, ...memberAndGroupEvents, ...alwaysWaiting });
  });

  it('a SCIM create and deactivation in an organization without webhooks or mappings leave the reconciler nothing', async () => {
    const { organization, scimToken } = await createTestOrganization(ctx, 'consumers-scim');
    const scim = (r: request.Test) =>
      r.set('authorization', `Bearer ${scimToken}`).set('content-type', 'application/scim+json');
    const created = await scim(request(app).post('/scim/v2/Users')).send({
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
      userName: 'dana@consumers-scim.test',
      emails: [{ value: 'dana@consumers-scim.test', primary: true }],
    });
    expect(created.status).toBe(201);

    const deactivated = await scim(request(app).patch(`/scim/v2/Users/${created.body.id}`)).send({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'replace', path: 'active', value: false }],
    });
    expect(deactivated.status).toBe(200);
    const events = await ctx.sql<{ type: string; dispatched: boolean }[]>`
      select type, dispatched_at is not null as dispatched from outbox
      where organization_id = ${organization.id} and payload->>'accountId' = ${created.body.id}
      order by type`;
    // The same events as ever; none waits for the reconciler.
    expect(events).toEqual([
      { type: 'member.joined', dispatched: true },
      { type: 'member.suspended', dispatched: true },
      { type: 'user.provisioned', dispatched: true },
      { type: 'user.updated', dispatched: true },
    ]);
  });

  // LISTEN needs a real PostgreSQL: the embedded one has a single session, and no notifications.
  it.skipIf(!process.env.DATABASE_URL)('wake the reconciler only when something waits for them', async () => {
    const { organization } = await createTestOrganization(ctx, 'consumers-notify');
    const heard: string[] = [];
    let hear: () => void = () => {};
    const listening = await ctx.sql.listen(OUTBOX_CHANNEL, (payload) => {
      heard.push(payload);
      hear();
    });
    const next = (count: number) =>
      new Promise<void>((resolve) => {
        hear = () => heard.length >= count && resolve();
        hear();
      });
    try {
      // Notifications arrive in commit order: a marker sent after the event shows whether the
      // event's own notification came before it.
      await emitEvent(ctx.sql, organization.id, 'user.updated', {}, admin);
      await ctx.sql`select pg_notify(${OUTBOX_CHANNEL}, 'marker')`;
      await next(1);
      await emitEvent(ctx.sql, organization.id, 'mapping.created', {}, admin);
      await next(2);
      expect(heard).toEqual(['marker', '']);
    } finally {
      await listening.unlisten();
    }
  });
});

describe('joins and group membership changes, for role mapping', () => {
  /** A new member of the organization, through SCIM. */
  async function member(organizationId: string, email: string): Promise<string> {
    const account = await ensureAccount(ctx.sql, { email });
    await joinOrganization(ctx.sql, { organizationId, accountId: account.id, source: 'scim' }, scim);
    return account.id;
  }
  /** Whether the newest event of `type` in the organization was written dispatched. */
  async function newestDispatched(organizationId: string, type: string): Promise<boolean> {
    const [row] = await ctx.sql<{ dispatched: boolean }[]>`
      select dispatched_at is not null as dispatched from outbox
      where organization_id = ${organizationId} and type = ${type} order by id desc limit 1`;
    return row!.dispatched;
  }
  const mappedRoles = async (organizationId: string, accountId: string) =>
    (await getMembership(ctx.sql, organizationId, accountId))!.mappedRoles;

  it('wait for the reconciler where the organization maps a group, or a member still has mapped roles', async () => {
    const org = (await createTestOrganization(ctx, 'quiet-roles')).organization.id;
    const group = await createGroup(ctx.sql, { organizationId: org, source: 'scim', displayName: 'Admins' }, scim);
    const first = await member(org, 'first@quiet-roles.test');
    expect(await newestDispatched(org, 'member.joined')).toBe(true);

    const mapping = await createGroupRoleMapping(
      ctx.sql,
      { organizationId: org, groupId: group.id, roles: ['admin'] },
      mapper,
    );
    const second = await member(org, 'second@quiet-roles.test');
    expect(await newestDispatched(org, 'member.joined')).toBe(false);
    await changeGroupMembers(ctx.sql, org, group.id, { add: [first, second] }, scim);
    expect(await newestDispatched(org, 'group.members_changed')).toBe(false);
    await createReconciler(ctx).events();
    expect(await mappedRoles(org, first)).toEqual(['admin']);

    // The mapping goes; until the reconciler handles that, its members keep the role it gave. A
    // member leaving the group meanwhile still waits for the reconciler, which takes it away: the
    // deletion's own recompute no longer finds them in the group.
    await deleteGroupRoleMapping(ctx.sql, org, mapping.id, mapper);
    await changeGroupMembers(ctx.sql, org, group.id, { remove: [first] }, scim);
    expect(await newestDispatched(org, 'group.members_changed')).toBe(false);
    await createReconciler(ctx).events();
    expect(await mappedRoles(org, first)).toEqual([]);
    expect(await mappedRoles(org, second)).toEqual([]);

    await changeGroupMembers(ctx.sql, org, group.id, { add: [first] }, scim);
    expect(await newestDispatched(org, 'group.members_changed')).toBe(true);
  });

  // Two sessions at once: a real PostgreSQL only (the embedded one has a single session).
  it.skipIf(!process.env.DATABASE_URL)(
    'a mapping created while a group change is under way is not missed',
    async () => {
      const org = (await createTestOrganization(ctx, 'racing-roles')).organization.id;
      const group = await createGroup(ctx.sql, { organizationId: org, source: 'scim', displayName: 'Admins' }, scim);
      const person = await member(org, 'person@racing-roles.test');

      // The mapping's creation stays open until the change waits for it; the change's statement
      // began before the mapping committed, so its own snapshot does not show the mapping.
      let release = () => {};
      const held = new Promise<void>((resolve) => (release = resolve));
      let reached = () => {};
      const creating = new Promise<void>((resolve) => (reached = resolve));
      const creation = ctx.sql.begin(async (tx) => {
        await createGroupRoleMapping(tx, { organizationId: org, groupId: group.id, roles: ['admin'] }, mapper);
        reached();
        await held;
      });
      await creating;
      const change = started(changeGroupMembers(ctx.sql, org, group.id, { add: [person] }, scim));
      try {
        await untilWaitingOrEnded(ctx.sql, change, 'advisory');
        expect(change.settled).toBe(false);
      } finally {
        release();
      }
      await creation;
      await change.result;

      expect(await newestDispatched(org, 'group.members_changed')).toBe(false);
      await createReconciler(ctx).events();
      expect(await mappedRoles(org, person)).toEqual(['admin']);
    },
  );
});
