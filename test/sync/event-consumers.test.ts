import type { Express } from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import type { AppContext } from '../../src/context.ts';
import type { Actor } from '../../src/core/actor.ts';
import { emitEvent } from '../../src/core/events.ts';
import { createWebhookEndpoint, setWebhookEndpointEnabled } from '../../src/core/webhook-endpoints.ts';
import { OUTBOX_CHANNEL } from '../../src/sync/reconciler.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

const admin: Actor = { type: 'admin_key', id: 'k', name: 'key', channel: 'admin' };
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
    // Role mapping and the emails always wait for the reconciler; the rest waits for nobody.
    const alwaysDispatched = {
      'member.joined': false,
      'group.members_changed': false,
      'mapping.created': false,
      'invite.created': false,
      'domain.verification_lost': false,
    };
    expect(await written()).toEqual({ 'user.updated': true, 'member.suspended': true, ...alwaysDispatched });

    // A webhook endpoint receives member events while it is enabled.
    const endpoint = await createWebhookEndpoint(
      ctx.sql,
      ctx.config.serverSecret,
      { organizationId: id, url: 'http://127.0.0.1:9/hook' },
      admin,
      { allowPrivateNetworks: true },
    );
    expect(await written()).toEqual({ 'user.updated': true, 'member.suspended': false, ...alwaysDispatched });
    await setWebhookEndpointEnabled(ctx.sql, id, endpoint.id, false, admin);
    expect(await written()).toEqual({ 'user.updated': true, 'member.suspended': true, ...alwaysDispatched });
  });

  it('a SCIM create and deactivation in an organization without webhooks leave the reconciler only the join', async () => {
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
    // The same events as ever; only the join waits for the reconciler (role mapping).
    expect(events).toEqual([
      { type: 'member.joined', dispatched: false },
      { type: 'member.suspended', dispatched: true },
      { type: 'user.provisioned', dispatched: true },
      { type: 'user.updated', dispatched: true },
    ]);
  });

  it('wake the reconciler only when something waits for them', async () => {
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
      await emitEvent(ctx.sql, organization.id, 'member.joined', {}, admin);
      await next(2);
      expect(heard).toEqual(['marker', '']);
    } finally {
      await listening.unlisten();
    }
  });
});
