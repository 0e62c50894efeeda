import type { Request } from 'express';
import SCIMMY from 'scimmy';
import {
  deprovisionUser,
  findDirectoryUser,
  listDirectoryUsers,
  provisionUser,
  replaceDirectoryUser,
  setDirectoryUserActive,
  type DirectoryUser,
} from '../core/directory-users.ts';
import type { Sql } from '../storage/database.ts';
import type { ScimmyHandlers, ScimRequest } from './auth.ts';
import { notFoundError, scimError } from './errors.ts';
import type { Attribute, Catalog, Fragment } from './filter-sql.ts';
import { checkUserLimits } from './limits.ts';
import { attributeParams, listResponse, readListRequest, renderingFilter, totalFromPage } from './list.ts';
import { ENTERPRISE_USER, isObject, normalizeUser, type JsonObject } from './normalize.ts';
import { activeOnlyValue, applyUserPatch, readPatchOperations } from './patch.ts';
import { plainUser } from './plain-user.ts';

/** The SCIM User resource: scimmy handlers for GET one/POST/PUT/DELETE, and orgsync's own list and PATCH. */

const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';

export function usersLocation(app: ScimRequest['app']): string {
  return `${app.config.publicUrl}/scim/v2/Users`;
}

/** The stored row as a SCIM document (before scimmy applies `attributes` and adds meta.location). */
export function toScimUser(row: DirectoryUser): JsonObject {
  return {
    schemas: row.resource[ENTERPRISE_USER] ? [CORE_USER, ENTERPRISE_USER] : [CORE_USER],
    id: row.accountId,
    ...(row.externalId !== null ? { externalId: row.externalId } : {}),
    userName: row.userName,
    active: row.active,
    ...row.resource,
    meta: {
      resourceType: 'User',
      created: row.createdAt.toISOString(),
      lastModified: row.updatedAt.toISOString(),
      version: `W/"${row.version}"`,
    },
  };
}

/**
 * The document as sent. Stored documents were validated by the schema on the way in, so with no
 * `attributes`/`excludedAttributes` to apply only meta.location is missing; scimmy's outbound
 * pass (a fifth of a lookup's CPU) runs only when there is something to shape.
 */
function render(ctx: ScimRequest, row: DirectoryUser, attributes?: unknown): unknown {
  const document = toScimUser(row);
  if (attributes === undefined) {
    (document.meta as JsonObject).location = `${usersLocation(ctx.app)}/${row.accountId}`;
    return document;
  }
  return new SCIMMY.Schemas.User(document, 'out', usersLocation(ctx.app), attributes as never);
}

/**
 * Checks a normalised document (normalize.ts) against the User schema (types, required userName)
 * the way scimmy does for POST: the common shapes by plain-user.ts, the rest by scimmy itself.
 */
function validated(document: JsonObject): JsonObject {
  const common = plainUser(document);
  if (common) return common;
  let checked: unknown;
  try {
    checked = new SCIMMY.Schemas.User(document, 'in');
  } catch (error) {
    // scimmy reports schema violations as TypeErrors.
    if (error instanceof TypeError) throw scimError(400, 'invalidValue', error.message);
    throw error;
  }
  const { meta: _meta, ...plain } = JSON.parse(JSON.stringify(checked)) as JsonObject;
  return plain;
}

const catalogs = new WeakMap<Sql, Catalog>();

/** The filterable User attributes, made once per pool (a lookup would otherwise rebuild them all). */
export function userCatalog(sql: Sql): Catalog {
  let catalog = catalogs.get(sql);
  if (!catalog) catalogs.set(sql, (catalog = buildUserCatalog(sql)));
  return catalog;
}

function buildUserCatalog(sql: Sql): Catalog {
  const json = (...path: string[]) => sql`(u.resource #>> ${`{${path.map((p) => `"${p}"`).join(',')}}`}::text[])`;
  const text = (expr: Fragment, caseExact = false): Attribute => ({ kind: 'text', expr, caseExact });
  const enterprise = (name: string) => text(json(ENTERPRISE_USER, name));
  const urn = ENTERPRISE_USER.toLowerCase();
  // Built on demand: a lookup needs one attribute, not all of them.
  const known: Record<string, () => Attribute> = {
    id: () => ({ kind: 'uuid', expr: sql`u.account_id` }),
    username: () => text(sql`u.user_name`),
    externalid: () => text(sql`u.external_id`, true),
    displayname: () => text(sql`u.display_name`),
    active: () => ({ kind: 'boolean', expr: sql`u.active` }),
    emails: () => ({ kind: 'jsonArray', expr: sql`(u.resource -> 'emails')` }),
    'emails.value': () => ({ kind: 'lowerArray', expr: sql`u.emails` }),
    phonenumbers: () => ({ kind: 'jsonArray', expr: sql`(u.resource -> 'phoneNumbers')` }),
    'meta.created': () => ({ kind: 'date', expr: sql`u.created_at` }),
    'meta.lastmodified': () => ({ kind: 'date', expr: sql`u.updated_at` }),
    'name.givenname': () => text(json('name', 'givenName')),
    'name.familyname': () => text(json('name', 'familyName')),
    'name.formatted': () => text(json('name', 'formatted')),
    title: () => text(json('title')),
    nickname: () => text(json('nickName')),
    usertype: () => text(json('userType')),
    locale: () => text(json('locale')),
    preferredlanguage: () => text(json('preferredLanguage')),
    [`${urn}:employeenumber`]: () => enterprise('employeeNumber'),
    [`${urn}:department`]: () => enterprise('department'),
    [`${urn}:costcenter`]: () => enterprise('costCenter'),
    [`${urn}:organization`]: () => enterprise('organization'),
    [`${urn}:division`]: () => enterprise('division'),
    [`${urn}:manager.value`]: () => text(json(ENTERPRISE_USER, 'manager', 'value'), true),
  };
  return (name) => known[name]?.();
}

export async function listUsersResponse(ctx: ScimRequest, params: Record<string, unknown>) {
  const { sql } = ctx.app;
  const list = readListRequest(sql, params, userCatalog(sql), sql`u.account_id`);
  const { rows, total } = await listDirectoryUsers(sql, ctx.organizationId, list.query, (length) =>
    totalFromPage(list.query, length),
  );
  return listResponse(
    rows.map((row) => render(ctx, row, list.attributes)),
    total,
    list.startIndex,
  );
}

/**
 * POST /Users. orgsync's own route (not scimmy's) so the document is checked against the schema
 * once and rendered without a second schema pass: a create costs a third less CPU.
 */
export async function createUserResponse(ctx: ScimRequest, body: unknown, query: Request['query']) {
  if (!isObject(body)) throw scimError(400, 'invalidSyntax', 'a user must be a JSON object');
  const { id: _id, ...document } = validated(body);
  const row = await provisionUser(ctx.app.sql, ctx.organizationId, document, ctx.actor);
  answered(ctx, row);
  return render(ctx, row, renderingFilter(attributeParams(query)));
}

/**
 * PATCH. Setting only `active` (deactivation, reactivation) is one statement; anything else is
 * applied to the current document and written if nobody changed it meanwhile (core retries),
 * so concurrent PATCHes to one user lose nothing.
 */
export async function patchUser(ctx: ScimRequest, id: string, body: unknown, query: Request['query']) {
  const operations = readPatchOperations(body);
  const { sql } = ctx.app;
  const active = activeOnlyValue(operations);
  const row =
    active !== undefined
      ? await setDirectoryUserActive(sql, ctx.organizationId, id, active, ctx.actor, ctx.ifMatch)
      : await replaceDirectoryUser(
          sql,
          ctx.organizationId,
          id,
          (current) => {
            if (operations.length === 0) return null;
            const { id: _id, meta: _meta, ...document } = toScimUser(current);
            const patched = normalizeUser(applyUserPatch(document, operations));
            checkUserLimits(patched);
            // A change of `active` alone (in a shape activeOnlyValue does not take) changes only a
            // boolean the normalisation has checked: the whole-schema pass is needed only when more changed.
            const onlyActive = typeof patched.active === 'boolean' && sameApartFrom(document, patched, 'active');
            return onlyActive ? patched : validated(patched);
          },
          ctx.actor,
          ctx.ifMatch,
        );
  answered(ctx, row);
  return render(ctx, row, renderingFilter(attributeParams(query)));
}

/** The request touched this user, and its answer is about it (request log, ETag). */
function answered(ctx: ScimRequest, row: DirectoryUser): void {
  ctx.touched = { type: 'User', id: row.accountId };
  ctx.version = row.version;
}

function sameApartFrom(a: JsonObject, b: JsonObject, key: string): boolean {
  return JSON.stringify({ ...a, [key]: null }) === JSON.stringify({ ...b, [key]: null });
}

/** scimmy's handlers for the routes it serves (GET one, PUT, DELETE; POST /Users is orgsync's own). */
export const userHandlers: ScimmyHandlers = {
  async egress(resource, ctx) {
    const row = resource.id ? await findDirectoryUser(ctx.app.sql, ctx.organizationId, resource.id) : null;
    if (!row) throw notFoundError('user', resource.id ?? '');
    answered(ctx, row);
    return toScimUser(row);
  },
  /** PUT only: scimmy has validated the body against the schema already. */
  async ingress(resource, instance, context) {
    const ctx = context as ScimRequest;
    const { meta: _meta, ...document } = JSON.parse(JSON.stringify(instance)) as JsonObject;
    const id = resource.id!;
    const row = await replaceDirectoryUser(ctx.app.sql, ctx.organizationId, id, () => document, ctx.actor, ctx.ifMatch);
    answered(ctx, row);
    return toScimUser(row);
  },
  async degress(resource, ctx) {
    await deprovisionUser(ctx.app.sql, ctx.organizationId, resource.id!, ctx.actor, ctx.ifMatch);
    ctx.touched = { type: 'User', id: resource.id! };
  },
};
