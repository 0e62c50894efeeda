import SCIMMY from 'scimmy';
import type { Sql } from '../storage/database.ts';
import { scimError } from './errors.ts';
import { parseFilter } from './filter.ts';
import { attributeKey, compileFilter, type Catalog, type Fragment } from './filter-sql.ts';

/** Page size when the client gives none, and the most a page holds (advertised in ServiceProviderConfig). */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 200;

/** A page of a list in SQL: the filter (null: none), a stable order, and offset/limit. */
export interface ListQuery {
  where: Fragment | null;
  orderBy: Fragment;
  offset: number;
  limit: number;
}

/**
 * The total a page tells by itself (a short page that is not past the end), or null when it
 * must be counted. Lookups by userName never pay for a count.
 */
export function totalFromPage(query: ListQuery, length: number): number | null {
  const short = query.limit > 0 && length < query.limit;
  return short && (length > 0 || query.offset === 0) ? query.offset + length : null;
}

export interface ListRequest {
  query: ListQuery;
  startIndex: number;
  /** What scimmy needs to apply `attributes` / `excludedAttributes` when rendering. */
  attributes: unknown;
  /** Whether the client asked for an attribute (e.g. a group's members) at all. */
  wants(attribute: string): boolean;
}

/**
 * Reads list parameters (from the query string or a /.search body) into SQL: the filter, a
 * stable order (sortBy, then id) and the page.
 */
export function readListRequest(
  sql: Sql,
  params: Record<string, unknown>,
  catalog: Catalog,
  idColumn: Fragment,
): ListRequest {
  const where =
    typeof params.filter === 'string' && params.filter.trim() !== ''
      ? compileFilter(sql, parseFilter(params.filter), catalog)
      : null;
  // RFC 7644 §3.4.2.4: below 1 means 1. Past 2^53 a number is no longer exact, and no list is
  // that long: any larger startIndex (2^63, 1e400) is past the end and answers an empty page.
  const startIndex = Math.min(Number.MAX_SAFE_INTEGER, Math.max(1, integer(params.startIndex, 'startIndex') ?? 1));
  const count = Math.min(MAX_PAGE_SIZE, Math.max(0, integer(params.count, 'count') ?? DEFAULT_PAGE_SIZE));
  const descending = typeof params.sortOrder === 'string' && params.sortOrder.toLowerCase() === 'descending';
  const direction = sql.unsafe(descending ? 'desc' : 'asc');
  let orderBy = sql`${idColumn} ${direction}`;
  if (typeof params.sortBy === 'string' && params.sortBy !== '') {
    const attribute = catalog(attributeKey(params.sortBy));
    if (!attribute || !('expr' in attribute) || attribute.kind === 'jsonArray') {
      throw scimError(400, 'invalidValue', `sorting by '${params.sortBy}' is not supported`);
    }
    const expr = attribute.kind === 'text' && !attribute.caseExact ? sql`lower(${attribute.expr})` : attribute.expr;
    orderBy = sql`${expr} ${direction} nulls last, ${idColumn} ${direction}`;
  }
  const shape = attributeParams(params);
  const names = (value: unknown) =>
    typeof value === 'string' ? value.split(',').map((a) => attributeKey(a.trim())) : null;
  const included = names(shape.attributes);
  const excluded = names(shape.excludedAttributes) ?? [];
  return {
    query: { where, orderBy, offset: startIndex - 1, limit: count },
    startIndex,
    attributes: renderingFilter(shape),
    wants: (attribute) =>
      included ? included.some((a) => a === attribute || a.startsWith(`${attribute}.`)) : !excluded.includes(attribute),
  };
}

/** scimmy's form of `attributes`/`excludedAttributes`, or undefined when neither is given. */
export function renderingFilter(shape: { attributes?: string; excludedAttributes?: string }): unknown {
  if (!shape.attributes && !shape.excludedAttributes) return undefined;
  return (new SCIMMY.Resources.User(shape as never) as { attributes?: unknown }).attributes;
}

export function attributeParams(params: Record<string, unknown>): { attributes?: string; excludedAttributes?: string } {
  const pick = (value: unknown) =>
    Array.isArray(value) ? value.join(',') : typeof value === 'string' && value.trim() !== '' ? value : undefined;
  const attributes = pick(params.attributes);
  const excludedAttributes = pick(params.excludedAttributes);
  return { ...(attributes ? { attributes } : {}), ...(excludedAttributes ? { excludedAttributes } : {}) };
}

function integer(value: unknown, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'number' ? value : Number(value);
  // Infinity is what a number too large for a double reads as ("1e400"): clamped like any other.
  if (!Number.isInteger(n) && Math.abs(n) !== Infinity)
    throw scimError(400, 'invalidValue', `${name} must be an integer`);
  return n;
}

export function listResponse(resources: unknown[], total: number, startIndex: number) {
  return {
    schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'],
    totalResults: total,
    startIndex,
    itemsPerPage: resources.length,
    Resources: resources,
  };
}
