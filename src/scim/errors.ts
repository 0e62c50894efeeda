import SCIMMY from 'scimmy';
import { DomainError, type DomainErrorCode } from '../core/errors.ts';
import { unavailableMessage } from '../http/errors.ts';

/** The scimType keywords of RFC 7644 §3.12 that orgsync answers with. */
export type ScimType =
  | 'invalidFilter'
  | 'tooMany'
  | 'uniqueness'
  | 'mutability'
  | 'invalidSyntax'
  | 'invalidPath'
  | 'noTarget'
  | 'invalidValue';

export type ScimError = InstanceType<typeof SCIMMY.Types.Error>;

export function scimError(status: number, scimType: ScimType | null, message: string): ScimError {
  return new SCIMMY.Types.Error(status, scimType as string, message);
}

export const notFoundError = (what: string, id: string) => scimError(404, null, `${what} ${id} not found`);

/**
 * Each domain error's status and scimType (RFC 7644 §3.12 has none for 403, 412, 502 or 503). A
 * 503 gets Retry-After as it goes out (exchange.ts), as all the app's 503s do.
 */
const DOMAIN_ERRORS: Record<DomainErrorCode, [status: number, scimType: ScimType | null]> = {
  not_found: [404, null],
  conflict: [409, 'uniqueness'],
  invalid: [400, 'invalidValue'],
  forbidden: [403, null],
  rule_violation: [409, null],
  unavailable: [503, null],
  precondition_failed: [412, null],
  bad_gateway: [502, null],
};

/**
 * Turns anything a handler throws into a SCIM error. Domain errors keep their meaning; losing the
 * database, or a write rolled back to settle a conflict, is 503 (unavailableMessage); anything
 * else is an internal error, logged and reported without its message (which may name internals).
 * scimmy would otherwise answer unknown errors with 404.
 */
export function toScimError(error: unknown, log: (error: unknown) => void): ScimError {
  if (error instanceof SCIMMY.Types.Error) return error;
  if (error instanceof DomainError) {
    const [status, scimType] = DOMAIN_ERRORS[error.code];
    return scimError(status, scimType, error.message);
  }
  const unavailable = unavailableMessage(error, log);
  if (unavailable !== null) return scimError(503, null, unavailable);
  log(error);
  return scimError(500, null, 'internal error');
}

/** The SCIM error response body (urn:ietf:params:scim:api:messages:2.0:Error). */
export function errorBody(error: { status: number | string; scimType?: string | null; message: string }) {
  return {
    schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
    status: String(error.status),
    ...(error.scimType ? { scimType: error.scimType } : {}),
    detail: error.message,
  };
}
