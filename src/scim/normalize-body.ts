import { checkUserLimits } from './limits.ts';
import { normalizeUser, normalizeValue, type JsonObject } from './normalize.ts';

/**
 * A POST or PUT body (of a request, or of a /Bulk operation) as the handlers take it: Okta's and
 * Entra's quirks removed (normalize.ts), and a User's values checked against their columns' limits.
 */
export function normalizedBody(type: 'Users' | 'Groups', body: JsonObject): JsonObject {
  if (type === 'Groups') return (normalizeValue(body) ?? {}) as JsonObject;
  const user = normalizeUser(body);
  checkUserLimits(user);
  return user;
}
