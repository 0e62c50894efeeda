import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../src/context.ts';
import { systemActor } from '../src/core/actor.ts';
import { serializeBatchProvisioning } from '../src/core/batch-provisioning-lock.ts';
import { getInvitationImport, runInvitationImport, startInvitationImport } from '../src/core/invitation-import-jobs.ts';
import { expireInvitations } from '../src/core/invitation-lifecycle.ts';
import { inviteMembers } from '../src/core/invitations.ts';
import { createTestContext, createTestOrganization } from './support/context.ts';
import { started, untilWaitingOrEnded } from './support/lock-waits.ts';

/**
 * The member counter rows (migrations 094, 113) stay locked until commit. The writes of invited
 * memberships that take many of them in no order (an import batch, the expiry sweep) wait for the
 * organization's batch lock before taking any, as a /Bulk window does. Shown without timing
 * (test/support/lock-waits.ts).
 */
let ctx: AppContext;
const admin = systemActor('admin');

beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => ctx.database.close());

/** Holds the organization's batch lock while `write` starts; checks it waits holding no counter row, then lets it run. */
async function besideABatch<T>(organizationId: string, write: () => Promise<T>): Promise<T> {
  let tracked!: ReturnType<typeof started<T>>;
  await ctx.sql.begin(async (tx) => {
    await serializeBatchProvisioning(tx, organizationId);
    tracked = started(write());
    await untilWaitingOrEnded(ctx.sql, tracked, 'advisory');
    expect(tracked.settled).toBe(false);
    await tx`select from member_counts where organization_id = ${organizationId} for update nowait`;
  });
  return tracked.result;
}

async function invite(organizationId: string, emails: string[]) {
  const results = await inviteMembers(
    ctx.sql,
    ctx.config.serverSecret,
    organizationId,
    emails.map((email) => ({ email })),
    admin,
  );
  expect(results.every((r) => r.invited)).toBe(true);
}

/** The organization's count of members in (list_tab, status), over its shards. */
async function counted(organizationId: string, listTab: string, status: string): Promise<number> {
  const [row] = await ctx.sql<{ n: number }[]>`
    select coalesce(sum(n), 0)::int as n from member_counts
    where organization_id = ${organizationId} and list_tab = ${listTab} and status = ${status}`;
  return row!.n;
}

const emails = (prefix: string) => Array.from({ length: 20 }, (_, i) => `${prefix}${i}@invitation-locks.test`);

// Lock waits seen from a second session: a real PostgreSQL only (the embedded one has a single session).
describe.skipIf(!process.env.DATABASE_URL)(
  'writes of many invited memberships wait for the organization batch lock',
  () => {
    it('an invitation import batch', async () => {
      const { organization } = await createTestOrganization(ctx, 'import-locks');
      const csv = ['email', ...emails('imported')].join('\n');
      const job = await startInvitationImport(ctx.sql, organization.id, csv, {}, admin);
      await besideABatch(organization.id, () =>
        runInvitationImport(ctx.sql, ctx.config.serverSecret, organization.id, job.id),
      );
      expect(await getInvitationImport(ctx.sql, organization.id, job.id)).toMatchObject({
        status: 'done',
        invited: 20,
      });
      expect(await counted(organization.id, 'invitations', 'invited')).toBe(20);
    });

    it('the expiry sweep', async () => {
      const { organization } = await createTestOrganization(ctx, 'sweep-locks');
      await invite(organization.id, emails('expired'));
      await ctx.sql`update invitations set expires_at = now() - interval '1 minute' where organization_id = ${organization.id}`;
      const expired = await besideABatch(organization.id, () => expireInvitations(ctx.sql, systemActor('sync')));
      expect(expired).toBe(20);
      const statuses = await ctx.sql`
      select distinct status from memberships where organization_id = ${organization.id} and status <> 'active'`;
      expect(statuses).toEqual([{ status: 'removed' }]);
      expect(await counted(organization.id, 'invitations', 'invited')).toBe(0);
    });

    it('the expiry sweep passes over an invitation whose membership a join holds, and never waits for it', async () => {
      const { organization } = await createTestOrganization(ctx, 'sweep-join');
      const [held, free] = emails('joining') as [string, string];
      await invite(organization.id, [held, free]);
      await ctx.sql`update invitations set expires_at = now() - interval '1 minute' where organization_id = ${organization.id}`;
      const pending = () => ctx.sql<{ email: string }[]>`
      select email from invitations where organization_id = ${organization.id} and status = 'pending'`;
      // A join locks the membership first, then the invitation.
      await ctx.sql.begin(async (tx) => {
        await tx`
        select from memberships m join accounts a on a.id = m.account_id
        where m.organization_id = ${organization.id} and lower(a.email) = ${held} for update of m`;
        const sweep = started(expireInvitations(ctx.sql, systemActor('sync')));
        await untilWaitingOrEnded(ctx.sql, sweep, 'transactionid');
        expect(sweep.settled).toBe(true);
        expect(await sweep.result).toBe(1);
      });
      expect(await pending()).toEqual([{ email: held }]);
      expect(await expireInvitations(ctx.sql, systemActor('sync'))).toBe(1);
      expect(await pending()).toEqual([]);
    });
  },
);
