import type { Db } from './database.ts';

export interface RateLimit {
  /** Sustained requests per second. */
  perSecond: number;
  /** Requests allowed at once above that rate; a new bucket starts full. */
  burst: number;
}

/**
 * Takes one request's token from the bucket `key` shared by every instance on the database
 * (`scim_rate_buckets`), in one statement: the bucket refills at `perSecond` up to `burst` since
 * its last use, then gives a token if it holds a whole one. Concurrent takes on one bucket queue
 * on its row, so instances together never exceed the limit. Answers whether a token was given
 * and the tokens left. `cost` takes that many tokens at once (a SCIM /Bulk request's operations),
 * never more than the burst, so a request within the limits can always pass once the bucket is full.
 */
export async function takeRateToken(
  db: Db,
  key: string,
  limit: RateLimit,
  cost = 1,
): Promise<{ allowed: boolean; tokens: number }> {
  const take = Math.min(Math.max(cost, 1), limit.burst);
  const refilled = db`least(${limit.burst}::float8, b.tokens + ${limit.perSecond}::float8
    * extract(epoch from clock_timestamp() - b.refilled_at)::float8)`;
  const [row] = await db<{ allowed: boolean; tokens: number }[]>`
    insert into scim_rate_buckets as b (credential_id, tokens, refilled_at, allowed)
    values (${key}, ${limit.burst - take}::float8, clock_timestamp(), true)
    on conflict (credential_id) do update set
      allowed = ${refilled} >= ${take}::float8,
      tokens = case when ${refilled} >= ${take}::float8 then ${refilled} - ${take}::float8 else ${refilled} end,
      refilled_at = clock_timestamp()
    returning allowed, tokens`;
  return row!;
}
