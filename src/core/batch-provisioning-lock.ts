import { randomInt } from 'node:crypto';
import type { Db, Fragment, Tx } from '../storage/database.ts';

/** The advisory lock class of serializeBatchProvisioning (the two-key form, apart from the one-key locks). */
const BATCH_PROVISIONING_LOCK = 7317111;

/**
 * Taken first by a transaction that writes many memberships of an organization (a /Bulk window,
 * an invitation import batch, the expiry sweep): such transactions then run one at a time. Each
 * write moves a counter row of its shard (migrations 094 and 111) and keeps that row locked until
 * commit, so two of them taking shards in different orders would deadlock, and PostgreSQL would
 * fail one after a second. The writes of one user that take rows of both counters take the shared
 * form (batchProvisioningTurn).
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

/** The advisory lock class of a counter shard held by a shared transaction (two-key form). */
export const COUNTER_SHARD_LOCK = 7317113;

/**
 * Opens a transaction that writes many users of an organization beside others like it (a shared
 * transaction of SCIM writes, in `lane`): the shared form of the batch lock, and one counter shard
 * for all its writes (migration 117). It then holds one row of each counter, of a shard no other
 * such transaction of the organization holds, where it would hold rows of many shards in no order.
 *
 * The shard is the first free one from its lane's: free means its advisory lock is, so that the
 * transactions of other processes (a fleet's) keep out of it too. Two of them in one shard would
 * wait on each other's counter rows, and, with creates and deactivations taking those rows in
 * different orders, could deadlock. Only when all 16 are taken does it share its lane's.
 */
export async function countInOneShard(tx: Tx, organizationId: string, lane: number): Promise<void> {
  const preferred = (firstCounterShard + lane) % 16;
  // Tried in order, each lock only until one is had (the Limit stops the scan there).
  const freeShard = tx`(
    select n % 16 from generate_series(${preferred}::int, ${preferred}::int + 15) n
    where pg_try_advisory_xact_lock(${COUNTER_SHARD_LOCK}, hashtext(${organizationId}::text || '/' || n % 16))
    limit 1)`;
  await tx`
    select set_config('orgsync.counter_shard', coalesce(${freeShard}, ${preferred}::int)::text, true)
    from (${batchProvisioningTurn(tx, organizationId)}) turn`;
}
