/**
 * What Okta and Entra ID really send, made into what RFC 7643 says, before anything else reads
 * a body: Entra's "True"/"False" strings for booleans, `null` for "no value", a bare string as
 * the enterprise `manager`; Okta's generated `password` is dropped and never stored.
 */
export const ENTERPRISE_USER = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

const BOOLEAN_ATTRIBUTES = new Set(['active', 'primary']);

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** A deep copy with nulls removed and boolean strings turned into booleans. */
export function normalizeValue(value: Json, key = ''): Json | undefined {
  if (value === null) return undefined;
  if (typeof value === 'string' && BOOLEAN_ATTRIBUTES.has(key.toLowerCase()) && /^(true|false)$/i.test(value)) {
    return value.toLowerCase() === 'true';
  }
  if (Array.isArray(value)) return value.map((v) => normalizeValue(v, key)).filter((v): v is Json => v !== undefined);
  if (typeof value === 'object') {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) {
      const normalized = normalizeValue(v, k);
      if (normalized !== undefined) out[k] = normalized;
    }
    return out;
  }
  return value;
}

/** Normalizes a whole User body (POST, PUT, or the document a PATCH produced). */
export function normalizeUser(body: JsonObject): JsonObject {
  const user = (normalizeValue(body) ?? {}) as JsonObject;
  delete user.password;
  const enterprise = user[ENTERPRISE_USER];
  if (
    enterprise &&
    typeof enterprise === 'object' &&
    !Array.isArray(enterprise) &&
    typeof enterprise.manager === 'string'
  ) {
    enterprise.manager = enterprise.manager === '' ? {} : { value: enterprise.manager };
  }
  return user;
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
