import SCIMMY from 'scimmy';
import { DomainError } from '../core/errors.ts';
import { UNAVAILABLE_MESSAGE } from '../http/errors.ts';
import { isDatabaseUnavailable } from '../storage/database.ts';

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
 * Turns anything a handler throws into a SCIM error. Domain errors keep their meaning; losing the
 * database is 503 (the app adds Retry-After); anything else is an internal error, reported without
 * its message (which may name internals). scimmy would otherwise answer unknown errors with 404.
 */
export function toScimError(error: unknown, log: (error: unknown) => void): ScimError {
  if (error instanceof SCIMMY.Types.Error) return error;
  if (error instanceof DomainError) {
    switch (error.code) {
      case 'not_found':
        return scimError(404, null, error.message);
      case 'conflict':
        return scimError(409, 'uniqueness', error.message);
      case 'invalid':
        return scimError(400, 'invalidValue', error.message);
      case 'forbidden':
        return scimError(403, null, error.message);
      case 'rule_violation':
        return scimError(409, null, error.message);
      case 'precondition_failed':
        return scimError(412, null, error.message);
    }
  }
  if (isDatabaseUnavailable(error)) return scimError(503, null, UNAVAILABLE_MESSAGE);
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
