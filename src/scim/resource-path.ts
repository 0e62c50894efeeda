/**
 * `/Users` or `/Groups`, and what follows it (an id, `.search`), as express matches routes: any
 * case, an optional trailing slash.
 */
export const RESOURCE_PATH = /^\/(Users|Groups)(?:\/([^/]+?))?\/?$/i;

/** The resource type a path under /scim/v2 is for, matched as the routes match it; undefined for any other path. */
export function resourceTypeOf(path: string): 'Users' | 'Groups' | undefined {
  const collection = RESOURCE_PATH.exec(path)?.[1]?.toLowerCase();
  return collection === 'users' ? 'Users' : collection === 'groups' ? 'Groups' : undefined;
}
