/**
 * ETags of SCIM resources (RFC 7644 §3.14, RFC 7232). A resource's entity tag is its
 * meta.version, a weak tag `W/"<n>"`; tags compare weakly (by their opaque part), as SCIM's own
 * examples send weak tags in If-Match. The core checks If-Match atomically with the write it
 * guards (see core/directory-users.ts, core/groups.ts claimGroupVersion); this adapter reads the
 * headers and sets `ETag`, and answers a GET whose If-None-Match matches with 304.
 */

export const etagOf = (version: number): string => `W/"${version}"`;

/**
 * The versions an If-Match (or If-None-Match) header names; undefined when there is no header, it
 * is `*` (any current representation: a missing resource answers 404 anyway), or it is blank: no
 * tag at all is no condition (as a bulk operation's `"version": ""`, which RFC 7644 §3.7 makes
 * optional). A tag that is not one of orgsync's versions (`""` too) names none, so an empty list
 * never matches.
 */
export function versionsNamed(header: string | undefined): readonly number[] | undefined {
  const value = header?.trim();
  if (value === undefined || value === '' || value === '*') return undefined;
  const versions: number[] = [];
  for (const [, opaque] of value.matchAll(/(?:W\/)?"([^"]*)"/g)) {
    if (/^\d{1,15}$/.test(opaque!)) versions.push(Number(opaque));
  }
  return versions;
}

/** The If-Match of a request (or of a bulk operation, its `version`): read on writes of a resource only. */
export function ifMatchOf(method: string, header: string | undefined): readonly number[] | undefined {
  return method === 'PUT' || method === 'PATCH' || method === 'DELETE' ? versionsNamed(header) : undefined;
}

/** Whether an If-None-Match header matches a resource at `version`. */
export function noneMatchHits(header: string | undefined, version: number): boolean {
  if (header?.trim() === '*') return true;
  return versionsNamed(header)?.includes(version) ?? false;
}
