import type { RequestHandler } from 'express';
import { errorBody } from './errors.ts';

/**
 * A token bucket per SCIM token, in this process. Generous by default: a storm of 429s can get an
 * Entra provisioning job quarantined, so this only stops a runaway client. With several
 * instances each keeps its own buckets, so the effective limit is the sum.
 */
export function rateLimitPerToken(limit: { perSecond: number; burst: number }): RequestHandler {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return (req, res, next) => {
    const key = req.scim?.credentialId;
    if (!key || limit.perSecond <= 0) return next();
    const now = Date.now();
    const bucket = buckets.get(key) ?? { tokens: limit.burst, at: now };
    bucket.tokens = Math.min(limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * limit.perSecond);
    bucket.at = now;
    buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return next();
    }
    const retryAfter = Math.max(1, Math.ceil((1 - bucket.tokens) / limit.perSecond));
    res.setHeader('retry-after', String(retryAfter));
    res.status(429).type('application/scim+json');
    res.send(errorBody({ status: 429, message: `too many requests for this token; retry after ${retryAfter} s` }));
  };
}
