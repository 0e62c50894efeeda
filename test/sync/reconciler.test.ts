import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { ensureAccount } from '../../src/core/accounts.ts';
import type { Actor } from '../../src/core/actor.ts';
import { joinOrganization } from '../../src/core/memberships.ts';
import { createWebhookEndpoint } from '../../src/core/webhook-endpoints.ts';
import { retryDeadDeliveries } from '../../src/sync/outbox.ts';
import { type Reconciler } from '../../src/sync/reconciler.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { verifyWebhookSignature } from '../../src/sync/webhooks.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';

const admin: Actor = { type: 'admin_key', id: 'k', name: 'key', channel: 'admin' };
let ctx: AppContext;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let orgId: string;
let secret: string;
let reconciler: Reconciler;
let n = 0;

beforeAll(async () => {
  ctx = await createTestContext({
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    DELIVERY_BACKOFF_MS: '10',
    DELIVERY_MAX_ATTEMPTS: '3',
  });
  receiver = await startWebhookReceiver();
  orgId = (await createTestOrganization(ctx, 'recon')).organization.id;
  secret = (
    await createWebhookEndpoint(ctx.sql, ctx.config.serverSecret, { organizationId: orgId, url: receiver.url }, admin, {
      allowPrivateNetworks: true,
    })
  ).secret;
  reconciler = createReconciler(ctx);
  await reconciler.runOnce();
});
afterAll(async () => {
  await receiver.close();
  await ctx.database.close();
});
beforeEach(() => {
  receiver.setMode('ok');
  receiver.received.length = 0;
});

async function invite(expiresIn: string) {
  n += 1;
  const email = `invitee${n}@recon.test`;
  const a = await ensureAccount(ctx.sql, { email });
  await ctx.sql`insert into memberships (organization_id, account_id, status, source, roles) values (${orgId}, ${a.id}, 'invited', 'invite', '{viewer}')`;
  const [inv] = await ctx.sql`
    insert into invitations (organization_id, account_id, email, status, token_hash, invited_by, expires_at)
    values (${orgId}, ${a.id}, ${email}, 'pending', ${'hash-' + email}, 'test', now() + ${expiresIn}::interval) returning id`;
  return { accountId: a.id, invitationId: inv!.id as string, email };
}

/** Lets due retries come due (backoff is 10 ms here) and runs the events job until quiet. */
async function drain(times = 6) {
  for (let i = 0; i < times; i++) {
    await reconciler.events();
    await new Promise((r) => setTimeout(r, 30));
  }
}

describe('invitations', () => {
  it('expires pending invitations past their expiry, ends the invited membership, audits and announces it', async () => {
    const late = await invite('-1 minute');
    const live = await invite('1 hour');
    const summary = await reconciler.runOnce();
    expect(summary.invitationsExpired).toBe(1);
    const [inv] = await ctx.sql`select status from invitations where id = ${late.invitationId}`;
    expect(inv).toEqual({ status: 'expired' });
    expect((await ctx.sql`select status from memberships where account_id = ${late.accountId}`)[0]!.status).toBe(
      'removed',
    );
    expect((await ctx.sql`select status from invitations where id = ${live.invitationId}`)[0]!.status).toBe('pending');
    const audit =
      await ctx.sql`select actor_name, channel from audit_log where action = 'invite.expired' and target_id = ${late.invitationId}`;
    expect(audit).toEqual([{ actorName: 'reconciler', channel: 'sync' }]);
    const hooks = receiver.delivered().length;
    expect(hooks).toBeGreaterThanOrEqual(1);
    const expiredHook = receiver.received.find((r) => JSON.parse(r.body).type === 'invite.expired');
    expect(JSON.parse(expiredHook!.body).data).toMatchObject({ invitationId: late.invitationId, email: late.email });
  });

  it('accepts a pending invitation whose person is already an active member', async () => {
    const inv = await invite('1 hour');
    await ctx.sql`update memberships set status = 'active' where organization_id = ${orgId} and account_id = ${inv.accountId}`;
    expect((await reconciler.runOnce()).invitationsAccepted).toBe(1);
    expect((await ctx.sql`select status from invitations where id = ${inv.invitationId}`)[0]!.status).toBe('accepted');
  });
});

describe('webhooks', () => {
  it('are signed with the endpoint secret and carry the event without sealed fields', async () => {
    const a = await ensureAccount(ctx.sql, { email: 'hooked@recon.test' });
    await joinOrganization(ctx.sql, { organizationId: orgId, accountId: a.id, source: 'admin' }, admin);
    await ctx.sql`insert into outbox (organization_id, type, payload) values (${orgId}, 'invite.created', ${ctx.sql.json({ email: 'x@recon.test', sealed: { token: 'SECRET' } })})`;
    await drain(1);
    const joined = receiver.received.find((r) => JSON.parse(r.body).type === 'member.joined')!;
    expect(verifyWebhookSignature(secret, joined.signature, joined.body)).toBe(true);
    expect(verifyWebhookSignature('wrong', joined.signature, joined.body)).toBe(false);
    expect(verifyWebhookSignature(secret, joined.signature, joined.body + ' ')).toBe(false);
    expect(JSON.parse(joined.body)).toMatchObject({
      type: 'member.joined',
      organizationId: orgId,
      data: { accountId: a.id },
    });
    const created = receiver.received.find((r) => JSON.parse(r.body).type === 'invite.created')!;
    expect(created.body).not.toContain('SECRET');
    expect(created.body).not.toContain('sealed');
  });

  it('retry with backoff, become dead letters after the last attempt, and can be retried', async () => {
    receiver.setMode('fail');
    const a = await ensureAccount(ctx.sql, { email: 'flaky@recon.test' });
    await joinOrganization(ctx.sql, { organizationId: orgId, accountId: a.id, source: 'admin' }, admin);
    await drain();
    const attempts = receiver.received.filter((r) => JSON.parse(r.body).data.accountId === a.id);
    expect(attempts).toHaveLength(3);
    const [dead] = await ctx.sql`
      select d.id, d.status, d.attempts, d.last_error from deliveries d join outbox o on o.organization_id = d.organization_id and o.id = d.event_id
      where o.payload->>'accountId' = ${a.id}`;
    expect(dead).toMatchObject({ status: 'dead', attempts: 3, lastError: 'webhook answered HTTP 500' });

    receiver.setMode('ok');
    expect(await retryDeadDeliveries(ctx.sql, orgId, [dead!.id], admin)).toBe(1);
    await drain(1);
    const [after] = await ctx.sql`select status from deliveries where organization_id = ${orgId} and id = ${dead!.id}`;
    expect(after!.status).toBe('delivered');
  });

  it('refuse private addresses unless allowed', async () => {
    const strict = await createTestContext({ DELIVERY_MAX_ATTEMPTS: '1' });
    try {
      const org = (await createTestOrganization(strict, 'strict')).organization.id;
      const input = { organizationId: org, url: receiver.url };
      await expect(
        createWebhookEndpoint(strict.sql, strict.config.serverSecret, input, admin, { allowPrivateNetworks: false }),
      ).rejects.toThrow(/not a public address: 127\.0\.0\.1 \(loopback/);
      // Saved while allowed (or before its DNS changed): each delivery checks again.
      await createWebhookEndpoint(strict.sql, strict.config.serverSecret, input, admin, { allowPrivateNetworks: true });
      const a = await ensureAccount(strict.sql, { email: 'new@strict.test' });
      await joinOrganization(strict.sql, { organizationId: org, accountId: a.id, source: 'scim' }, admin);
      await createReconciler(strict).runOnce();
      const [d] = await strict.sql`select status, last_error from deliveries where organization_id = ${org} limit 1`;
      expect(d).toMatchObject({ status: 'dead', lastError: expect.stringMatching(/not a public address/) });
      expect(receiver.received).toHaveLength(0);
    } finally {
      await strict.database.close();
    }
  });
});

describe('event dispatch', () => {
  it('ends its run at a batch that is not full, and wakes the sending lanes only for deliveries', async () => {
    const { email, webhook } = reconciler.lanes;
    const runs = () => ({ email: email.stats.runs, webhook: webhook.stats.runs });
    const before = runs();
    // user.* events reach no webhook (the endpoint takes member.*, invite.* and group.*) and no email.
    await ctx.sql`
      insert into outbox (organization_id, type, payload)
      select ${orgId}, 'user.provisioned', jsonb_build_object('n', i) from generate_series(1, 3) i`;
    expect(await reconciler.dispatch()).toMatchObject({ eventsDispatched: 3, more: false });
    expect(runs()).toEqual(before);

    await ctx.sql`insert into outbox (organization_id, type, payload) values (${orgId}, 'member.updated', '{}')`;
    expect(await reconciler.dispatch()).toMatchObject({ eventsDispatched: 1, more: false });
    expect(runs()).toEqual({ email: before.email + 1, webhook: before.webhook + 1 });
    await Promise.all([email.idle(), webhook.idle()]);
  });
});
