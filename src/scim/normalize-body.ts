import { checkUserLimits } from './limits.ts';
import { normalizeUser, normalizeValue, type JsonObject } from './normalize.ts';
import { resourceTypeOf } from './resource-path.ts';

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

/**
 * The POST or PUT body of a request to `path` (under /scim/v2), normalized for the resource type
 * the path names as the routes match it (`/users/{id}` is a User's); any other path's is left as is.
 */
export function normalizedRequestBody(path: string, body: JsonObject): JsonObject {
  const type = resourceTypeOf(path);
  return type ? normalizedBody(type, body) : body;
}
