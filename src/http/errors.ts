import type { RequestHandler, Response } from 'express';
import { DomainError, type DomainErrorCode } from '../core/errors.ts';
import { isConflictLost, isDatabaseUnavailable } from '../storage/database.ts';

/** How long a client is asked to wait before retrying a request answered 503. */
export const RETRY_AFTER_SECONDS = 5;

/** What a request that failed for want of the database is told, in either error shape. */
export const UNAVAILABLE_MESSAGE = 'temporarily unavailable: the database is out of reach; retry later';

const STATUS: Record<DomainErrorCode, number> = {
  not_found: 404,
  conflict: 409,
  invalid: 400,
  forbidden: 403,
  rule_violation: 409,
  unavailable: 503,
  precondition_failed: 412,
  bad_gateway: 502,
};

/** Answers a DomainError as JSON `{error, message, details}`; returns false for anything else. */
export function sendDomainError(res: Response, error: unknown): boolean {
  if (!(error instanceof DomainError)) return false;
  res.status(STATUS[error.code]).json({ error: error.code, message: error.message, details: error.details });
  return true;
}

/**
 * What a request is told whose transaction PostgreSQL rolled back to settle a deadlock or a
 * serialization conflict (after orgsync's own retries, where it makes them): nothing was done.
 */
export const CONFLICT_LOST_MESSAGE =
  'temporarily unavailable: a concurrent change met this one, which was not made; retry';

/**
 * The message of the 503 a failed request gets when a retry will likely not meet its cause, else
 * null: the database out of reach, or a change rolled back to settle a conflict with another
 * (handed to `log`: each is worth knowing about).
 */
export function unavailableMessage(error: unknown, log: (error: unknown) => void): string | null {
  if (isDatabaseUnavailable(error)) return UNAVAILABLE_MESSAGE;
  if (!isConflictLost(error)) return null;
  log(error);
  return CONFLICT_LOST_MESSAGE;
}

/** Answers a request that failed for such a reason (unavailableMessage): 503 `{error, message}`. */
export function sendUnavailable(res: Response, error: unknown, log: (error: unknown) => void): boolean {
  const message = unavailableMessage(error, log);
  if (message === null) return false;
  res.status(503).json({ error: 'unavailable', message });
  return true;
}

/**
 * Every 503, whichever router answers it (scimmy-routers writes its own error responses), tells
 * the client when to retry. Set as the status line is written, the one moment all of them share.
 */
export const retryAfterOnUnavailable: RequestHandler = (_req, res, next) => {
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => Response;
  res.writeHead = ((...args: unknown[]) => {
    retryAfterIfUnavailable(res, typeof args[0] === 'number' ? args[0] : res.statusCode);
    return writeHead(...args);
  }) as Response['writeHead'];
  next();
};

/** Adds Retry-After to an answer of status 503 that has none. */
export function retryAfterIfUnavailable(res: Response, status: number): void {
  if (status === 503 && !res.hasHeader('retry-after')) res.setHeader('retry-after', String(RETRY_AFTER_SECONDS));
}
