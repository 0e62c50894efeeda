import { scimError } from './errors.ts';
import { parseFilter, type Filter } from './filter.ts';
import { ENTERPRISE_USER, isObject, normalizeValue, type Json, type JsonObject } from './normalize.ts';

/**
 * RFC 7644 §3.5.2 PATCH on a user document, as Okta and Entra ID send it: operation names in any
 * case, pathless `replace` with dotted or URN keys, filtered paths such as
 * `emails[type eq "work"].value` (an `add` or `replace` that matches nothing creates the element),
 * `null` meaning "unset", and an empty operation list meaning "no change".
 */
export interface PatchOperation {
  op: 'add' | 'replace' | 'remove';
  path?: string;
  value?: Json;
}

const invalidPath = (message: string) => scimError(400, 'invalidPath', message);

/** Reads a PatchOp request body into operations; malformed bodies are `invalidSyntax`. */
export function readPatchOperations(body: unknown): PatchOperation[] {
  if (!isObject(body)) throw scimError(400, 'invalidSyntax', 'a PATCH body must be a PatchOp object');
  const operations = body.Operations ?? body.operations;
  if (!Array.isArray(operations)) throw scimError(400, 'invalidSyntax', 'a PatchOp needs an Operations array');
  return operations.map((raw, index) => {
    if (!isObject(raw) || typeof raw.op !== 'string')
      throw scimError(400, 'invalidSyntax', `operation ${index + 1} has no op`);
    const op = raw.op.toLowerCase();
    if (op !== 'add' && op !== 'replace' && op !== 'remove') {
      throw scimError(400, 'invalidSyntax', `operation ${index + 1}: unknown op '${raw.op}'`);
    }
    if (raw.path !== undefined && (typeof raw.path !== 'string' || raw.path.trim() === '')) {
      throw invalidPath(`operation ${index + 1}: path must be a non-empty string`);
    }
    const path = typeof raw.path === 'string' ? raw.path.trim() : undefined;
    if (op === 'remove' && path === undefined)
      throw scimError(400, 'noTarget', `operation ${index + 1}: remove needs a path`);
    if (op !== 'remove' && !('value' in raw))
      throw scimError(400, 'invalidValue', `operation ${index + 1}: ${op} needs a value`);
    return { op, path, value: raw.value as Json };
  });
}

/**
 * The value of `active` when every operation only sets it (the IdPs' deactivation and
 * reactivation: `{op: replace, path: active, value: false}`, Entra's `"False"`, Okta's pathless
 * `{value: {active: false}}`); undefined when the PATCH does anything else.
 */
export function activeOnlyValue(operations: PatchOperation[]): boolean | undefined {
  let active: boolean | undefined;
  for (const operation of operations) {
    if (operation.op === 'remove') return undefined;
    const entries =
      operation.path === undefined
        ? isObject(operation.value)
          ? Object.entries(operation.value)
          : []
        : [[operation.path, operation.value] as const];
    if (entries.length !== 1) return undefined;
    const [path, value] = entries[0]!;
    if (path.toLowerCase() !== 'active') return undefined;
    if (typeof value === 'boolean') active = value;
    else if (typeof value === 'string' && /^(true|false)$/i.test(value)) active = value.toLowerCase() === 'true';
    else return undefined;
  }
  return active;
}

/** Applies the operations to a copy of `document` (a user: top-level attributes plus the enterprise extension). */
export function applyUserPatch(document: JsonObject, operations: PatchOperation[]): JsonObject {
  const doc = structuredClone(document);
  for (const operation of operations) {
    const value = operation.value === undefined ? undefined : normalizeValue(operation.value);
    if (operation.path === undefined) {
      if (!isObject(value))
        throw scimError(400, 'invalidValue', `a ${operation.op} without a path needs an object value`);
      for (const [key, inner] of Object.entries(value)) {
        if (key === 'schemas' || key === 'meta' || key === 'id') continue;
        if (key.toLowerCase() === ENTERPRISE_USER.toLowerCase() && isObject(inner)) {
          for (const [sub, subValue] of Object.entries(inner))
            applyAt(doc, operation.op, `${ENTERPRISE_USER}:${sub}`, subValue);
        } else {
          applyAt(doc, operation.op, key, inner);
        }
      }
    } else {
      applyAt(doc, operation.op, operation.path, value);
    }
  }
  return doc;
}

interface Target {
  container: JsonObject;
  attribute: string;
  filter?: Filter;
  sub?: string;
}

function applyAt(doc: JsonObject, op: PatchOperation['op'], path: string, value: Json | undefined): void {
  const target = resolve(doc, path);
  if (target.attribute === 'id') throw scimError(400, 'mutability', 'id cannot be changed');
  // `null` (already dropped by normalizeValue) means "unset".
  if (op === 'remove' || value === undefined) return remove(target, op === 'remove' ? value : undefined);
  if (target.filter) return setFiltered(target, value);
  const current = target.container[target.attribute];
  if (target.sub) {
    const complex = isObject(current) ? current : {};
    complex[key(complex, target.sub)] = value;
    target.container[target.attribute] = complex;
    return;
  }
  if (op === 'add' && Array.isArray(current)) {
    const additions = Array.isArray(value) ? value : [value];
    target.container[target.attribute] = [
      ...current,
      ...additions.filter((a) => !current.some((c) => sameValue(c, a))),
    ];
  } else if (isObject(current) && isObject(value)) {
    target.container[target.attribute] = { ...current, ...value };
  } else {
    target.container[target.attribute] = value;
  }
}

function setFiltered(target: Target, value: Json): void {
  const current = target.container[target.attribute];
  const elements = Array.isArray(current) ? current : [];
  const matches = elements.filter((e) => isObject(e) && matchesFilter(e, target.filter!));
  if (matches.length === 0) {
    // Entra adds `emails[type eq "work"].value` for a user who has no work email yet: create it.
    const element: JsonObject = { ...equalities(target.filter!) };
    if (target.sub) element[target.sub] = value;
    else if (isObject(value)) Object.assign(element, value);
    else throw scimError(400, 'invalidValue', `${target.attribute}[...] needs an object value`);
    target.container[target.attribute] = [...elements, element];
    return;
  }
  for (const match of matches as JsonObject[]) {
    if (target.sub) match[key(match, target.sub)] = value;
    else if (isObject(value)) Object.assign(match, value);
    else throw scimError(400, 'invalidValue', `${target.attribute}[...] needs an object value`);
  }
}

function remove(target: Target, value: Json | undefined): void {
  const current = target.container[target.attribute];
  if (target.filter) {
    if (!Array.isArray(current)) return;
    if (target.sub) {
      for (const e of current) if (isObject(e) && matchesFilter(e, target.filter)) delete e[key(e, target.sub)];
    } else {
      target.container[target.attribute] = current.filter((e) => !(isObject(e) && matchesFilter(e, target.filter!)));
    }
    return;
  }
  if (target.sub) {
    if (isObject(current)) delete current[key(current, target.sub)];
    return;
  }
  // `remove` of some values of a multi-valued attribute: `{"path":"emails","value":[{"value":"x"}]}`.
  if (Array.isArray(current) && value !== undefined) {
    const doomed = Array.isArray(value) ? value : [value];
    target.container[target.attribute] = current.filter((c) => !doomed.some((d) => sameValue(c, d)));
    return;
  }
  delete target.container[target.attribute];
}

const PATH = /^([A-Za-z$][\w$-]*)(?:\[(.*)\])?(?:\.([A-Za-z$][\w$-]*))?$/;
const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:user:';

function resolve(doc: JsonObject, rawPath: string): Target {
  let path = rawPath;
  let container = doc;
  if (path.toLowerCase().startsWith(CORE_USER)) path = path.slice(CORE_USER.length);
  else if (path.toLowerCase().startsWith(`${ENTERPRISE_USER.toLowerCase()}:`)) {
    const extension = doc[ENTERPRISE_USER];
    container = isObject(extension) ? extension : {};
    doc[ENTERPRISE_USER] = container;
    path = path.slice(ENTERPRISE_USER.length + 1);
  } else if (path.toLowerCase() === ENTERPRISE_USER.toLowerCase()) {
    return { container: doc, attribute: ENTERPRISE_USER };
  } else if (path.toLowerCase().startsWith('urn:')) {
    throw invalidPath(`unknown schema in path '${rawPath}'`);
  }
  const match = PATH.exec(path);
  if (!match) throw invalidPath(`'${rawPath}' is not a valid attribute path`);
  const [, attribute, filterText, sub] = match;
  let filter: Filter | undefined;
  if (filterText !== undefined) {
    try {
      filter = parseFilter(filterText);
    } catch {
      throw invalidPath(`bad filter in path '${rawPath}'`);
    }
  }
  return { container, attribute: key(container, attribute!), filter, sub };
}

/** Attribute names are case-insensitive: reuse the existing key's spelling, else a canonical one. */
function key(container: JsonObject, name: string): string {
  const lower = name.toLowerCase();
  return Object.keys(container).find((k) => k.toLowerCase() === lower) ?? CANONICAL.get(lower) ?? name;
}

const CANONICAL = new Map(
  [
    'userName',
    'externalId',
    'displayName',
    'nickName',
    'profileUrl',
    'title',
    'userType',
    'preferredLanguage',
    'locale',
    'timezone',
    'active',
    'name',
    'formatted',
    'familyName',
    'givenName',
    'middleName',
    'honorificPrefix',
    'honorificSuffix',
    'emails',
    'phoneNumbers',
    'ims',
    'photos',
    'addresses',
    'groups',
    'entitlements',
    'roles',
    'x509Certificates',
    'value',
    'type',
    'primary',
    'display',
    'streetAddress',
    'locality',
    'region',
    'postalCode',
    'country',
    'employeeNumber',
    'costCenter',
    'organization',
    'division',
    'department',
    'manager',
  ].map((name) => [name.toLowerCase(), name]),
);

/** Evaluates a value filter against one element of a multi-valued attribute. */
export function matchesFilter(element: JsonObject, filter: Filter): boolean {
  switch (filter.op) {
    case 'and':
      return matchesFilter(element, filter.left) && matchesFilter(element, filter.right);
    case 'or':
      return matchesFilter(element, filter.left) || matchesFilter(element, filter.right);
    case 'not':
      return !matchesFilter(element, filter.filter);
    case 'present': {
      const v = element[key(element, filter.attr)];
      return v !== undefined && v !== null && v !== '';
    }
    case 'valuePath':
      return false;
    case 'compare': {
      const actual = element[key(element, filter.attr)];
      const a = typeof actual === 'string' ? actual.toLowerCase() : actual;
      const b = typeof filter.value === 'string' ? filter.value.toLowerCase() : filter.value;
      switch (filter.compare) {
        case 'eq':
          return a === b || (typeof a === 'boolean' && String(a) === b);
        case 'ne':
          return a !== b;
        case 'co':
          return typeof a === 'string' && a.includes(String(b));
        case 'sw':
          return typeof a === 'string' && a.startsWith(String(b));
        case 'ew':
          return typeof a === 'string' && a.endsWith(String(b));
        default:
          return false;
      }
    }
  }
}

/** `type eq "work"` → `{type: "work"}`: what a new element created by a filtered add must carry. */
function equalities(filter: Filter): JsonObject {
  if (filter.op === 'compare' && filter.compare === 'eq' && filter.value !== null)
    return { [filter.attr]: filter.value };
  if (filter.op === 'and') return { ...equalities(filter.left), ...equalities(filter.right) };
  return {};
}

function sameValue(a: Json, b: Json): boolean {
  if (isObject(a) && isObject(b) && 'value' in b)
    return JSON.stringify(a.value)?.toLowerCase() === JSON.stringify(b.value)?.toLowerCase();
  return JSON.stringify(a) === JSON.stringify(b);
}
