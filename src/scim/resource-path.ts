/**
 * `/Users` or `/Groups`, and what follows it (an id, `.search`), as express matches routes: any
 * case, an optional trailing slash.
 */
export const RESOURCE_PATH = /^\/(Users|Groups)(?:\/([^/]+?))?\/?$/i;

/**
 * What a path under /scim/v2 names, matched as the routes match it: the resource type in its
 * canonical spelling and what follows it (still percent-encoded; undefined for the collection);
 * undefined for any other path.
 */
export function resourceTargetOf(path: string): { type: 'Users' | 'Groups'; rest?: string } | undefined {
  const match = RESOURCE_PATH.exec(path);
  if (!match) return undefined;
  return { type: match[1]!.toLowerCase() === 'users' ? 'Users' : 'Groups', rest: match[2] };
}

/** The resource type a path under /scim/v2 is for, matched as the routes match it; undefined for any other path. */
export function resourceTypeOf(path: string): 'Users' | 'Groups' | undefined {
  return resourceTargetOf(path)?.type;
}
