import { randomInt } from 'node:crypto';
import type { Db, Fragment, Tx } from '../storage/database.ts';

/** The advisory lock class of serializeBatchProvisioning (the two-key form, apart from the one-key locks). */
const BATCH_PROVISIONING_LOCK = 7317111;

/**
 * Taken first by a transaction that writes many memberships of an organization (an invitation
 * import batch, the expiry sweep): such transactions then run one at a time. Each write moves
 * counter rows (migrations 094 and 111) and keeps them locked until commit; rows of many shards
 * taken in different orders would deadlock, and PostgreSQL would fail one after a second. Since
 * migration 118 a transaction counts in a shard no other holds while one of the 16 is free, so
 * /Bulk windows no longer take this lock; these background batches still do, which keeps them
 * apart beyond that. The writes of one user that take rows of both counters take the shared form
 * (batchProvisioningTurn).
 */
export async function serializeBatchProvisioning(tx: Tx, organizationId: string): Promise<void> {
  await tx`select pg_advisory_xact_lock(${BATCH_PROVISIONING_LOCK}, hashtext(${organizationId}))`;
}

/**
 * The shared form of serializeBatchProvisioning's lock, for a write that takes a counter row of
 * each table (scim_users and memberships: a create, a deprovisioning): many such writes run at
 * once, none beside a batch, which holds rows of both tables in no order. To take before the
 * counter rows (the triggers fire at the end of the statement) and before any row of the user.
 */
export function batchProvisioningTurn(db: Db, organizationId: string): Fragment {
  return db`select pg_advisory_xact_lock_shared(${BATCH_PROVISIONING_LOCK}, hashtext(${organizationId}))`;
}

/** This process's first counter shard; a fleet's processes start apart. */
const firstCounterShard = randomInt(16);

/**
 * Opens a transaction that writes many users of an organization beside others like it (a shared
 * transaction of SCIM writes, in `lane`): the shared form of the batch lock, and one counter shard
 * for all its writes (migration 117), the first free one from its lane's (migration 118: free of
 * every other transaction moving counters, a fleet's other processes' included). It then holds
 * one row of each counter, where it would hold rows of many shards in no order.
 */
export async function countInOneShard(tx: Tx, organizationId: string, lane: number): Promise<void> {
  const preferred = (firstCounterShard + lane) % 16;
  await tx`
    select orgsync_take_counter_shard(${organizationId}, ${preferred}::smallint)
    from (${batchProvisioningTurn(tx, organizationId)}) turn`;
}
