import type { Response } from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countInOneShard, serializeBatchProvisioning } from '../../src/core/batch-provisioning-lock.ts';
import { provisionUser, setDirectoryUserActive } from '../../src/core/directory-users.ts';
import type { Sql, Tx } from '../../src/storage/database.ts';
import { started, untilWaitingOrEnded } from '../support/lock-waits.ts';
import { oktaUser, scimFixture } from '../support/scim.ts';
import { countersAndRows, deadlocksSoFar } from '../support/table-counts.ts';

/**
 * The counter rows of migrations 094 and 111 stay locked until commit, so writes that take two
 * of them must take them in one order, or wait their turn, never each other. Shown without timing
 * (test/support/lock-waits.ts).
 */
let f: Awaited<ReturnType<typeof scimFixture>>;
let organizationId: string;

beforeAll(async () => {
  f = await scimFixture('counter-locks');
  organizationId = f.org.organization.id;
});
afterAll(async () => f.ctx.database.close());

/** Locks the member counter row (tab 'members', `status`, `shard`) without waiting; false when another holds it. */
async function lockedAtOnce(tx: Tx, status: string, shard: number): Promise<boolean> {
  return tx
    .savepoint(async (sp) => {
      const rows = await sp`
        select n from member_counts
        where organization_id = ${organizationId} and list_tab = 'members' and status = ${status} and shard = ${shard}
        for update nowait`;
      expect(rows).toHaveLength(1);
      return true;
    })
    .catch((error: { code?: string }) => {
      if (error.code === '55P03') return false;
      throw error;
    });
}

// Lock waits seen from a second session: a real PostgreSQL only (the embedded one has a single session).
describe.skipIf(!process.env.DATABASE_URL)('a change of status', () => {
  // Two members in one counter shard: one to deactivate, one (suspended first) to reactivate.
  let shard: number;
  let toDeactivate: string;
  let toReactivate: string;

  beforeAll(async () => {
    // 17 accounts: two of them share one of the 16 shards.
    const accounts = await f.ctx.sql<{ email: string; shard: number }[]>`
      insert into accounts (email) select 'status' || n || '@counter-locks.test' from generate_series(1, 17) n
      returning email, (abs(hashtext(id::text)::bigint) % 16)::int as shard`;
    const first = accounts.find((a) => accounts.some((b) => b !== a && b.shard === a.shard))!;
    const second = accounts.find((b) => b !== first && b.shard === first.shard)!;
    shard = first.shard;
    const create = async (email: string) =>
      (await f.client.post('/Users', oktaUser(email)).expect(201)).body.id as string;
    toDeactivate = await create(first.email);
    toReactivate = await create(second.email);
    await f.client.patch(`/Users/${toReactivate}`, [{ op: 'replace', value: { active: false } }]).expect(200);
  });

  // Its two counter rows in (list_tab, status) order: (members, active), then (members, suspended).
  it.each([
    ['deactivation', () => toDeactivate, false],
    ['reactivation', () => toReactivate, true],
  ])('(%s) locks the two counter rows of its shard in the one order', async (_, user, active) => {
    let request!: ReturnType<typeof started<Response>>;
    await f.ctx.sql.begin(async (tx) => {
      expect(await lockedAtOnce(tx, 'active', shard)).toBe(true);
      request = started(f.client.patch(`/Users/${user()}`, [{ op: 'replace', value: { active } }]));
      await untilWaitingOrEnded(f.ctx.sql, request);
      expect(request.settled).toBe(false);
      // It waits for the first row holding nothing: the second is free.
      expect(await lockedAtOnce(tx, 'suspended', shard)).toBe(true);
    });
    expect((await request.result).status).toBe(200);
    const [membership] = await f.ctx.sql`select status from memberships where account_id = ${user()}`;
    expect(membership!.status).toBe(active ? 'active' : 'suspended');
  });
});

describe.skipIf(!process.env.DATABASE_URL)(
  'a write taking a counter row of each table (scim_users, memberships)',
  () => {
    /** Holds the batches' lock (an invitation import batch's) while `write` starts, and answers the write's response. */
    async function besideABatch(write: () => PromiseLike<Response>): Promise<Response> {
      let request!: ReturnType<typeof started<Response>>;
      await f.ctx.sql.begin(async (tx) => {
        await serializeBatchProvisioning(tx, organizationId);
        request = started(write());
        await untilWaitingOrEnded(f.ctx.sql, request, 'advisory');
        expect(request.settled).toBe(false);
        // It waits for the batch before taking any counter row.
        await tx`select from scim_user_counts where organization_id = ${organizationId} for update nowait`;
        await tx`select from member_counts where organization_id = ${organizationId} for update nowait`;
      });
      return request.result;
    }

    it.each([
      ['in one statement', true],
      ['step by step (created inactive)', false],
    ])('a create %s waits for a batch transaction of its organization', async (_, active) => {
      const email = `created-${String(active)}@counter-locks.test`;
      const response = await besideABatch(() => f.client.post('/Users', oktaUser(email, { active })));
      expect(response.status).toBe(201);
      expect(response.body).toMatchObject({ userName: email, active });
    });

    it('a deprovisioning waits for a batch transaction of its organization', async () => {
      const id = (await f.client.post('/Users', oktaUser('deleted@counter-locks.test')).expect(201)).body.id as string;
      const response = await besideABatch(() => f.client.delete(`/Users/${id}`));
      expect(response.status).toBe(204);
      await f.client.get(`/Users/${id}`).expect(404);
    });
  },
);

/** A transaction opened now and committed by `commit()`; its statements run meanwhile. */
function heldTransaction(sql: Sql) {
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let open!: (tx: Tx) => void;
  const opened = new Promise<Tx>((resolve) => (open = resolve));
  const committed = sql.begin(async (tx) => {
    open(tx);
    await finished;
  });
  return {
    opened,
    commit: async () => {
      finish();
      await committed;
    },
  };
}

describe.skipIf(!process.env.DATABASE_URL)("shared transactions of one organization (a fleet's processes)", () => {
  const scim = { type: 'scim_token', id: undefined, name: 'okta', channel: 'scim' } as const;
  const deadlocks = () => deadlocksSoFar(f.ctx.sql);
  const shardOf = async (tx: Tx) =>
    Number((await tx<{ shard: string }[]>`select current_setting('orgsync.counter_shard') as shard`)[0]!.shard);

  it('count in shards of their own though they start at the same one, so creates and deactivations mixed never deadlock', async () => {
    const create = async (email: string) =>
      (await f.client.post('/Users', oktaUser(email)).expect(201)).body.id as string;
    const first = await create('mixed-first@counter-locks.test');
    const second = await create('mixed-second@counter-locks.test');
    const before = await deadlocks();

    // Both open in lane 0 of this process: as two processes of a fleet that started at the same shard.
    const one = heldTransaction(f.ctx.sql);
    const two = heldTransaction(f.ctx.sql);
    try {
      const [tx1, tx2] = await Promise.all([one.opened, two.opened]);
      await countInOneShard(tx1, organizationId, 0);
      await countInOneShard(tx2, organizationId, 0);
      expect(await shardOf(tx1)).not.toBe(await shardOf(tx2));

      // Each takes its counter rows in the other's order: a deactivation (the member counter's two
      // rows), then a create (the SCIM user counter's row, then the member counter's). In one shard
      // the second create would wait for the first transaction, which would then wait for it.
      await setDirectoryUserActive(tx1 as unknown as Sql, organizationId, first, false, scim);
      const created = started(
        provisionUser(tx2 as unknown as Sql, organizationId, oktaUser('mixed-third@counter-locks.test'), scim),
      );
      await untilWaitingOrEnded(f.ctx.sql, created);
      expect(created.settled).toBe(true);
      await created.result;
      await provisionUser(tx1 as unknown as Sql, organizationId, oktaUser('mixed-fourth@counter-locks.test'), scim);
      await setDirectoryUserActive(tx2 as unknown as Sql, organizationId, second, false, scim);
    } finally {
      const commits = await Promise.allSettled([one.commit(), two.commit()]);
      expect(commits.map((c) => c.status)).toEqual(['fulfilled', 'fulfilled']);
    }

    expect(await deadlocks()).toBe(before);
    const counts = await countersAndRows(f.ctx.sql, organizationId);
    expect(counts.counted).toBe(counts.users);
    expect(counts.members).toBe(counts.listed);
  });

  it('keep a write alone out of their shard: a lone create beside a batch that deactivated and creates', async () => {
    const create = async (email: string) =>
      (await f.client.post('/Users', oktaUser(email)).expect(201)).body.id as string;
    const deactivated = await create('batch-deactivated@counter-locks.test');
    // An account whose shard is the same by both counters' formulas (a hash of 0 or more).
    const accounts = await f.ctx.sql<{ email: string; shard: number; sameInBoth: boolean }[]>`
      insert into accounts (email) select 'alone' || n || '@counter-locks.test' from generate_series(1, 32) n
      returning email, (hashtext(id::text) & 15)::int as shard, hashtext(id::text) >= 0 as "sameInBoth"`;
    const alone = accounts.find((a) => a.sameInBoth)!;
    const before = await deadlocks();

    const batch = heldTransaction(f.ctx.sql);
    try {
      const tx = await batch.opened;
      await tx`select orgsync_take_counter_shard(${organizationId}, ${alone.shard}::smallint)`;
      expect(await shardOf(tx)).toBe(alone.shard);
      await setDirectoryUserActive(tx as unknown as Sql, organizationId, deactivated, false, scim);
      // Counting in its account's shard, it would take the SCIM user counter's row, then wait for
      // the member counter's, which the batch holds; the batch's create would then wait for it.
      const lone = started(f.client.post('/Users', oktaUser(alone.email)));
      await untilWaitingOrEnded(f.ctx.sql, lone);
      expect(lone.settled).toBe(true);
      expect((await lone.result).status).toBe(201);
      await provisionUser(tx as unknown as Sql, organizationId, oktaUser('batch-created@counter-locks.test'), scim);
    } finally {
      await batch.commit();
    }
    expect(await deadlocks()).toBe(before);
  });

  it("share their lane's shard only when all 16 are held, waiting for nothing", async () => {
    const holder = heldTransaction(f.ctx.sql);
    const other = heldTransaction(f.ctx.sql);
    try {
      const [held, tx] = await Promise.all([holder.opened, other.opened]);
      // The advisory locks of all 16 shards (migration 118's lock class and key).
      await held`
        select pg_advisory_xact_lock(7317113, hashtext(${organizationId}::text || '/' || n))
        from generate_series(0, 15) n`;
      await countInOneShard(held, organizationId, 0);
      await countInOneShard(tx, organizationId, 0);
      expect(await shardOf(tx)).toBe(await shardOf(held));
    } finally {
      await Promise.all([holder.commit(), other.commit()]);
    }
  });
});
