import type { Response } from 'express';
import type { Db } from '../storage/database.ts';
import { takeRateToken, type RateLimit } from '../storage/rate-buckets.ts';
import { errorBody } from './errors.ts';

/**
 * A token bucket per SCIM token, kept in PostgreSQL so that every instance of a fleet draws from
 * the same one: the limit holds per token, however many instances the load balancer spreads the
 * requests over. Generous by default: a storm of 429s can get an Entra provisioning job
 * quarantined, so this only stops a runaway client.
 *
 * Takes `cost` tokens of the bucket `key` (each request pays one; a /Bulk request pays for its
 * operations beyond that); when they are not there, answers 429 with Retry-After and says so.
 */
export async function refusedByRateLimit(
  db: Db,
  limit: RateLimit,
  key: string,
  cost: number,
  res: Response,
): Promise<boolean> {
  if (limit.perSecond <= 0 || cost <= 0) return false;
  const { allowed, tokens } = await takeRateToken(db, key, limit, cost);
  if (allowed) return false;
  const missing = Math.min(cost, limit.burst) - tokens;
  const retryAfter = Math.max(1, Math.ceil(missing / limit.perSecond));
  res.setHeader('retry-after', String(retryAfter));
  res.status(429).type('application/scim+json');
  res.send(errorBody({ status: 429, message: `too many requests for this token; retry after ${retryAfter} s` }));
  return true;
}
