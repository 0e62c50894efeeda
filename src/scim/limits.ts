import { MAX_EMAIL, MAX_EXTERNAL_ID, MAX_USER_NAME } from '../core/limits.ts';
import { scimError } from './errors.ts';
import { isObject, type Json, type JsonObject } from './normalize.ts';

/**
 * Refuses a User document (POST, PUT, or what a PATCH made) holding a value longer than its
 * column or index allows (core/limits.ts), before any query: `400 invalidValue`.
 */
export function checkUserLimits(user: JsonObject): void {
  refuseLonger('userName', user.userName, MAX_USER_NAME);
  refuseLonger('externalId', user.externalId, MAX_EXTERNAL_ID);
  if (Array.isArray(user.emails)) {
    for (const email of user.emails) if (isObject(email)) refuseLonger('emails.value', email.value, MAX_EMAIL);
  }
}

function refuseLonger(attribute: string, value: Json | undefined, max: number): void {
  if (typeof value === 'string' && value.length > max)
    throw scimError(400, 'invalidValue', `${attribute} is longer than ${max} characters`);
}
