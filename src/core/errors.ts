/** Errors the domain core raises; each edge adapter maps them to its own protocol's error shape. */
export type DomainErrorCode =
  | 'not_found'
  | 'conflict'
  | 'invalid'
  | 'forbidden'
  | 'rule_violation'
  | 'unavailable'
  | 'precondition_failed'
  | 'bad_gateway';

export class DomainError extends Error {
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export const notFound = (what: string, details?: Record<string, unknown>) =>
  new DomainError('not_found', `${what} not found`, details);
export const conflict = (message: string, details?: Record<string, unknown>) =>
  new DomainError('conflict', message, details);
export const invalid = (message: string, details?: Record<string, unknown>) =>
  new DomainError('invalid', message, details);
export const forbidden = (message: string, details?: Record<string, unknown>) =>
  new DomainError('forbidden', message, details);
/** A membership rule (last owner, removing oneself) refuses the change. */
export const ruleViolation = (message: string, details?: Record<string, unknown>) =>
  new DomainError('rule_violation', message, details);

/** A service the change depends on (DNS, an IdP's metadata URL) did not answer; trying later may work. */
export const unavailable = (message: string, details?: Record<string, unknown>) =>
  new DomainError('unavailable', message, details);

/** The resource is no longer at the version the caller names (SCIM If-Match); nothing was changed. */
export const preconditionFailed = (what: string, details?: Record<string, unknown>) =>
  new DomainError('precondition_failed', `${what} has changed since the version given in If-Match`, details);
/** A server orgsync fetched from (an IdP's metadata URL) failed or answered what it cannot use. */
export const badGateway = (message: string, details?: Record<string, unknown>) =>
  new DomainError('bad_gateway', message, details);

/** PostgreSQL unique_violation, for turning a lost race into a conflict. */
export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  const e = error as { code?: string; constraint_name?: string };
  return e?.code === '23505' && (constraint === undefined || e.constraint_name === constraint);
}
