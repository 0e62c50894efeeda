import SCIMMY from 'scimmy';
import { isObject, type Json, type JsonObject } from './normalize.ts';

/**
 * The schema check of a User document without scimmy's generic pass (a fifth of a create's CPU),
 * for the documents IdPs send nearly always: attributes named exactly as the schema names them,
 * holding strings and booleans (or objects and lists of them), canonical `type`s only. Anything
 * else (another spelling, a null, a reference, a date, a read-only or unknown attribute) is left
 * to scimmy: `plainUser` answers undefined and the caller runs the full pass. Its answer is what
 * scimmy's would be, attribute order included (test/scim/plain-user.test.ts compares the two).
 * The rules are read from scimmy's own User and Enterprise User definitions.
 */
const CORE = SCIMMY.Schemas.User.definition.id;
const ENTERPRISE = SCIMMY.Schemas.EnterpriseUser.definition.id;

interface Rule {
  type: 'string' | 'boolean' | 'complex';
  multiValued: boolean;
  /** The allowed values of a string, when the schema names them. */
  canonical?: readonly string[];
  /** A complex attribute's sub-attributes, in the schema's order. */
  sub?: Map<string, Rule>;
}

interface SchemaAttribute {
  name: string;
  type: string;
  config: { mutable: boolean | string; returned: boolean | string; multiValued: boolean; canonicalValues: unknown };
  subAttributes?: SchemaAttribute[];
}

/** The attributes this check takes, in the schema's order; the rest are left to scimmy. */
function rules(attributes: readonly SchemaAttribute[], skip: readonly string[]): Map<string, Rule> {
  const taken = new Map<string, Rule>();
  for (const attribute of attributes) {
    const rule = ruleOf(attribute);
    if (rule && !skip.includes(attribute.name)) taken.set(attribute.name, rule);
  }
  return taken;
}

function ruleOf({ type, config, subAttributes }: SchemaAttribute): Rule | undefined {
  // Read-only and never-returned attributes (id, meta, groups, password) are dropped or shaped by scimmy.
  if (config.mutable === false || config.returned === false || config.returned === 'never') return undefined;
  const canonical = Array.isArray(config.canonicalValues) ? (config.canonicalValues as string[]) : undefined;
  if (type === 'string' || type === 'boolean') return { type, multiValued: config.multiValued, canonical };
  if (type !== 'complex') return undefined;
  return { type, multiValued: config.multiValued, sub: rules(subAttributes ?? [], []) };
}

const coreRules = rules(SCIMMY.Schemas.User.definition.attributes as SchemaAttribute[], ['schemas']);
const enterpriseRules = rules(SCIMMY.Schemas.EnterpriseUser.definition.attributes as SchemaAttribute[], [
  'schemas',
  'externalId',
]);

/** The document as scimmy's inbound User schema pass would leave it (without meta), or undefined. */
export function plainUser(document: JsonObject): JsonObject | undefined {
  const schemas = document.schemas;
  const withEnterprise = document[ENTERPRISE] !== undefined;
  if (!Array.isArray(schemas) || schemas[0] !== CORE) return undefined;
  if (schemas.length !== (withEnterprise ? 2 : 1) || (withEnterprise && schemas[1] !== ENTERPRISE)) return undefined;
  if (typeof document.userName !== 'string') return undefined;
  for (const key in document) {
    if (key !== 'schemas' && key !== ENTERPRISE && !coreRules.has(key)) return undefined;
  }
  const checked: JsonObject = { schemas: withEnterprise ? [CORE, ENTERPRISE] : [CORE] };
  if (!copyChecked(document, coreRules, checked)) return undefined;
  if (withEnterprise) {
    const extension = document[ENTERPRISE];
    if (!isObject(extension)) return undefined;
    const checkedExtension: JsonObject = {};
    if (!onlyKnownKeys(extension, enterpriseRules) || !copyChecked(extension, enterpriseRules, checkedExtension)) {
      return undefined;
    }
    if (Object.keys(checkedExtension).length > 0) checked[ENTERPRISE] = checkedExtension;
  }
  return checked;
}

/** Copies the attributes of `source` into `target` in the schema's order; false when one is not plain. */
function copyChecked(source: JsonObject, taken: Map<string, Rule>, target: JsonObject): boolean {
  for (const [name, rule] of taken) {
    const value = source[name];
    if (value === undefined) continue;
    const checked = rule.multiValued ? checkedList(value, rule) : checkedValue(value, rule);
    if (checked === undefined) return false;
    target[name] = checked;
  }
  return true;
}

function checkedList(value: Json, rule: Rule): Json[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const list: Json[] = [];
  for (const item of value) {
    const checked = checkedValue(item, rule);
    if (checked === undefined) return undefined;
    list.push(checked);
  }
  return list;
}

function checkedValue(value: Json, rule: Rule): Json | undefined {
  if (rule.type === 'complex') {
    if (!isObject(value) || !onlyKnownKeys(value, rule.sub!)) return undefined;
    const checked: JsonObject = {};
    return copyChecked(value, rule.sub!, checked) ? checked : undefined;
  }
  if (typeof value !== rule.type) return undefined;
  if (rule.canonical && !rule.canonical.includes(value as string)) return undefined;
  return value;
}

function onlyKnownKeys(value: JsonObject, taken: Map<string, Rule>): boolean {
  for (const key in value) if (!taken.has(key)) return false;
  return true;
}
