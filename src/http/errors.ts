import type { Response } from 'express';
import { DomainError, type DomainErrorCode } from '../core/errors.ts';

const STATUS: Record<DomainErrorCode, number> = {
  not_found: 404,
  conflict: 409,
  invalid: 400,
  forbidden: 403,
  rule_violation: 409,
  unavailable: 503,
};

/** Answers a DomainError as JSON `{error, message, details}`; returns false for anything else. */
export function sendDomainError(res: Response, error: unknown): boolean {
  if (!(error instanceof DomainError)) return false;
  res.status(STATUS[error.code]).json({ error: error.code, message: error.message, details: error.details });
  return true;
}
