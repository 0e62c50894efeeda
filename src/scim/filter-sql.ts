import type { PendingQuery, Row } from 'postgres';
import { isUuid } from '../core/ids.ts';
import { isStorableDate } from '../core/limits.ts';
import type { Sql } from '../storage/database.ts';
import { scimError } from './errors.ts';
import type { CompareOp, Filter, Value } from './filter.ts';

/**
 * Translates a parsed SCIM filter into a SQL condition, so filtering, sorting and paging happen
 * in PostgreSQL and never by loading users into memory. Each resource type describes its
 * filterable attributes in a catalog; anything else is refused with `invalidFilter`.
 */
export type Fragment = PendingQuery<Row[]>;

export type Attribute =
  /** A text column or JSON text; `caseExact: false` compares lower-cased (RFC 7643 caseExact). */
  | { kind: 'text'; expr: Fragment; caseExact: boolean }
  | { kind: 'uuid'; expr: Fragment }
  | { kind: 'boolean'; expr: Fragment }
  | { kind: 'date'; expr: Fragment }
  /** A text[] column of lower-cased values (e.g. every email address of a user). */
  | { kind: 'lowerArray'; expr: Fragment }
  /** A multi-valued attribute kept as a JSON array, filtered element by element (`emails[type eq "work"]`). */
  | { kind: 'jsonArray'; expr: Fragment }
  /** Group members, filtered by account id through group_members. */
  | { kind: 'members'; exists: (condition: Fragment) => Fragment };

export type Catalog = (name: string) => Attribute | undefined;

const invalidFilter = (message: string) => scimError(400, 'invalidFilter', message);

const CORE_URN = /^urn:ietf:params:scim:schemas:core:2\.0:(user|group):/i;

/** Attribute names compare case-insensitively; the core schema's URN prefix may be given or not. */
export function attributeKey(name: string): string {
  return name.replace(CORE_URN, '').toLowerCase();
}

export function compileFilter(sql: Sql, filter: Filter, catalog: Catalog): Fragment {
  switch (filter.op) {
    case 'and':
      return sql`(${compileFilter(sql, filter.left, catalog)} and ${compileFilter(sql, filter.right, catalog)})`;
    case 'or':
      return sql`(${compileFilter(sql, filter.left, catalog)} or ${compileFilter(sql, filter.right, catalog)})`;
    case 'not':
      return sql`(not coalesce(${compileFilter(sql, filter.filter, catalog)}, false))`;
    case 'valuePath':
      return valuePath(sql, filter.attr, filter.filter, catalog);
    case 'present':
    case 'compare': {
      const attribute = catalog(attributeKey(filter.attr));
      // `emails co "x"`: a multi-valued attribute compared without a sub-attribute means its
      // `value` (RFC 7644 §3.4.2.2), through the catalog's own entry for it when there is one.
      const value =
        filter.op === 'compare' && isMultiValued(attribute) ? catalog(`${attributeKey(filter.attr)}.value`) : undefined;
      if (value) return condition(sql, value, filter);
      if (attribute) return condition(sql, attribute, filter);
      // `emails.type eq "work"`: a sub-attribute of a multi-valued attribute.
      const dot = filter.attr.lastIndexOf('.');
      if (dot > 0) {
        const parent = filter.attr.slice(0, dot);
        const sub = { ...filter, attr: filter.attr.slice(dot + 1) };
        if (isMultiValued(catalog(attributeKey(parent)))) {
          return valuePath(sql, parent, sub, catalog);
        }
      }
      throw invalidFilter(`filtering on '${filter.attr}' is not supported`);
    }
  }
}

function isMultiValued(attribute: Attribute | undefined): boolean {
  return attribute?.kind === 'jsonArray' || attribute?.kind === 'members';
}

function valuePath(sql: Sql, attr: string, inner: Filter, catalog: Catalog): Fragment {
  const attribute = catalog(attributeKey(attr));
  if (!attribute) throw invalidFilter(`'${attr}' is not a multi-valued attribute that can be filtered with [...]`);
  return elementFilter(sql, attribute, attr, inner);
}

/** `inner` on the elements of a multi-valued attribute: true when one element matches. */
function elementFilter(sql: Sql, attribute: Attribute, attr: string, inner: Filter): Fragment {
  if (attribute.kind === 'jsonArray') {
    const element = sql`e.value`;
    const elementCatalog: Catalog = (name) => {
      if (name === 'primary') return { kind: 'boolean', expr: sql`(${element} ->> 'primary')` };
      // Element keys are the lower-case sub-attributes of RFC 7643 (value, type, display).
      return ELEMENT_KEYS.has(name)
        ? { kind: 'text', expr: sql`(${element} ->> ${name}::text)`, caseExact: false }
        : undefined;
    };
    return sql`exists (select 1 from jsonb_array_elements(coalesce(${attribute.expr}, '[]'::jsonb)) e
                       where ${compileFilter(sql, inner, elementCatalog)})`;
  }
  if (attribute.kind === 'members') {
    return attribute.exists(
      compileFilter(sql, inner, (name) => (name === 'value' ? { kind: 'uuid', expr: sql`gm.account_id` } : undefined)),
    );
  }
  throw invalidFilter(`'${attr}' is not a multi-valued attribute that can be filtered with [...]`);
}

function condition(sql: Sql, attribute: Attribute, filter: Extract<Filter, { op: 'present' | 'compare' }>): Fragment {
  if (filter.op === 'present') return present(sql, attribute);
  const { compare, value, attr } = filter;
  switch (attribute.kind) {
    case 'text':
      return textCondition(sql, attribute.expr, attribute.caseExact, compare, value, attr);
    case 'uuid':
      return uuidCondition(sql, attribute.expr, compare, value, attr);
    case 'boolean':
      return booleanCondition(sql, attribute.expr, compare, value, attr);
    case 'date':
      return dateCondition(sql, attribute.expr, compare, value, attr);
    case 'lowerArray':
      return arrayCondition(sql, attribute.expr, compare, value, attr);
    case 'jsonArray':
      return elementFilter(sql, attribute, attr, { op: 'compare', attr: 'value', compare, value });
    case 'members':
      return attribute.exists(uuidCondition(sql, sql`gm.account_id`, compare, value, attr));
  }
}

function present(sql: Sql, attribute: Attribute): Fragment {
  switch (attribute.kind) {
    case 'text':
      return sql`(${attribute.expr} is not null and ${attribute.expr} <> '')`;
    case 'lowerArray':
      return sql`(cardinality(${attribute.expr}) > 0)`;
    case 'jsonArray':
      return sql`(jsonb_array_length(coalesce(${attribute.expr}, '[]'::jsonb)) > 0)`;
    case 'members':
      return attribute.exists(sql`true`);
    default:
      return sql`(${attribute.expr} is not null)`;
  }
}

function textCondition(
  sql: Sql,
  expr: Fragment,
  caseExact: boolean,
  compare: CompareOp,
  value: Value,
  attr: string,
): Fragment {
  if (value === null) return nullCondition(sql, expr, compare, attr);
  if (typeof value === 'boolean') throw invalidFilter(`'${attr}' is a string, not a boolean`);
  const text = caseExact ? String(value) : String(value).toLowerCase();
  const column = caseExact ? expr : sql`lower(${expr})`;
  switch (compare) {
    case 'eq':
      return sql`(${column} = ${text})`;
    case 'ne':
      return sql`(${column} is distinct from ${text})`;
    case 'co':
      return sql`(${column} like ${`%${escapeLike(text)}%`})`;
    case 'sw':
      return sql`(${column} like ${`${escapeLike(text)}%`})`;
    case 'ew':
      return sql`(${column} like ${`%${escapeLike(text)}`})`;
    default:
      return sql`(${column} ${sql.unsafe(SQL_ORDER[compare])} ${text})`;
  }
}

function uuidCondition(sql: Sql, expr: Fragment, compare: CompareOp, value: Value, attr: string): Fragment {
  if (compare === 'eq' || compare === 'ne') {
    // An id that is not a UUID matches nothing (it cannot be one of ours).
    const match = typeof value === 'string' && isUuid(value) ? sql`(${expr} = ${value}::uuid)` : sql`false`;
    return compare === 'eq' ? match : sql`(not ${match})`;
  }
  return textCondition(sql, sql`${expr}::text`, true, compare, value, attr);
}

function booleanCondition(sql: Sql, expr: Fragment, compare: CompareOp, value: Value, attr: string): Fragment {
  // Entra sends booleans as "True"/"False" strings.
  const flag = typeof value === 'string' && /^(true|false)$/i.test(value) ? value.toLowerCase() === 'true' : value;
  if (typeof flag !== 'boolean') throw invalidFilter(`'${attr}' is a boolean: compare it with true or false`);
  if (compare !== 'eq' && compare !== 'ne') throw invalidFilter(`'${attr}' is a boolean: only eq and ne apply`);
  const text = String(flag);
  return compare === 'eq' ? sql`(${expr}::text = ${text})` : sql`(${expr}::text is distinct from ${text})`;
}

function dateCondition(sql: Sql, expr: Fragment, compare: CompareOp, value: Value, attr: string): Fragment {
  if (value === null) return nullCondition(sql, expr, compare, attr);
  if (typeof value !== 'string' || Number.isNaN(Date.parse(value)))
    throw invalidFilter(`'${attr}' is a date: give an RFC 3339 date-time`);
  const at = new Date(value);
  if (!isStorableDate(at)) throw invalidFilter(`'${attr}': dates must be in the years 1 to 9999`);
  if (compare === 'co' || compare === 'sw' || compare === 'ew')
    throw invalidFilter(`'${attr}' is a date: '${compare}' does not apply`);
  // Compared at the millisecond precision clients see (the columns keep microseconds), as
  // ranges on the column itself so its indexes still apply: `eq T` is [T, T + 1 ms). The end
  // is computed by PostgreSQL: 9999-12-31T23:59:59.999Z + 1 ms has no ISO text form it reads.
  const next = sql`(${at}::timestamptz + interval '1 millisecond')`;
  switch (compare) {
    case 'eq':
      return sql`(${expr} >= ${at} and ${expr} < ${next})`;
    case 'ne':
      return sql`(${expr} is null or ${expr} < ${at} or ${expr} >= ${next})`;
    case 'gt':
      return sql`(${expr} >= ${next})`;
    case 'ge':
      return sql`(${expr} >= ${at})`;
    case 'lt':
      return sql`(${expr} < ${at})`;
    case 'le':
      return sql`(${expr} < ${next})`;
  }
}

function arrayCondition(sql: Sql, expr: Fragment, compare: CompareOp, value: Value, attr: string): Fragment {
  if (value === null) return compare === 'eq' ? sql`(cardinality(${expr}) = 0)` : sql`(cardinality(${expr}) > 0)`;
  const text = String(value).toLowerCase();
  switch (compare) {
    case 'eq':
      return sql`(${expr} @> array[${text}]::text[])`;
    case 'ne':
      return sql`(not (${expr} @> array[${text}]::text[]))`;
    default:
      return sql`exists (select 1 from unnest(${expr}) v where ${textCondition(sql, sql`v`, true, compare, text, attr)})`;
  }
}

function nullCondition(sql: Sql, expr: Fragment, compare: CompareOp, attr: string): Fragment {
  if (compare === 'eq') return sql`(${expr} is null)`;
  if (compare === 'ne') return sql`(${expr} is not null)`;
  throw invalidFilter(`'${attr} ${compare} null' is not a valid comparison`);
}

const ELEMENT_KEYS = new Set(['value', 'type', 'display']);

const SQL_ORDER: Record<'gt' | 'ge' | 'lt' | 'le', string> = { gt: '>', ge: '>=', lt: '<', le: '<=' };

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
