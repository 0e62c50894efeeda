import SCIMMY from 'scimmy';
import { changeGroupMembers, replaceGroupMembers, someMemberMatches, updateGroup, type Group } from '../core/groups.ts';
import { inTransaction, type Sql } from '../storage/database.ts';
import type { ScimmyHandlers, ScimRequest } from './auth.ts';
import { notFoundError, scimError } from './errors.ts';
import type { Catalog } from './filter-sql.ts';
import { listResponse, readListRequest, totalFromPage } from './list.ts';
import { isObject, normalizeValue, type Json, type JsonObject } from './normalize.ts';
import { readPatchOperations, type PatchOperation } from './patch.ts';
import { parseFilter } from './filter.ts';
import {
  changeScimGroupMembers,
  claimScimGroupVersion,
  createScimGroup,
  currentScimGroup,
  deleteScimGroup,
  findScimGroup,
  listScimGroups,
  SCIM_GROUPS,
  membersOf,
  replaceScimGroup,
  type GroupMember,
} from '../core/directory-groups.ts';

/**
 * The SCIM Group resource. Member changes in a PATCH go straight to SQL for the named members
 * only (scimmy's generic PATCH would read and rewrite all of them), and all operations of one
 * PATCH apply in one transaction.
 */

export function groupsLocation(app: ScimRequest['app']): string {
  return `${app.config.publicUrl}/scim/v2/Groups`;
}

export function toScimGroup(group: Group, members?: GroupMember[]): JsonObject {
  return {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
    id: group.id,
    ...(group.externalId !== null ? { externalId: group.externalId } : {}),
    displayName: group.displayName,
    ...(members ? { members: members as unknown as Json } : {}),
    meta: {
      resourceType: 'Group',
      created: group.createdAt.toISOString(),
      lastModified: group.updatedAt.toISOString(),
      version: `W/"${group.version}"`,
    },
  };
}

export function groupCatalog(sql: Sql, organizationId: string): Catalog {
  const known: Record<string, ReturnType<Catalog>> = {
    id: { kind: 'uuid', expr: sql`g.id` },
    displayname: { kind: 'text', expr: sql`g.display_name`, caseExact: false },
    externalid: { kind: 'text', expr: sql`g.external_id`, caseExact: true },
    'meta.created': { kind: 'date', expr: sql`g.created_at` },
    'meta.lastmodified': { kind: 'date', expr: sql`g.updated_at` },
    members: {
      kind: 'members',
      exists: (condition) => someMemberMatches(sql, organizationId, condition),
    },
  };
  known['members.value'] = known.members;
  return (name) => known[name];
}

export async function listGroupsResponse(ctx: ScimRequest, params: Record<string, unknown>) {
  const { sql } = ctx.app;
  const list = readListRequest(sql, params, groupCatalog(sql, ctx.organizationId), sql`g.id`);
  const { rows, total } = await listScimGroups(sql, ctx.organizationId, list.query, (length) =>
    totalFromPage(list.query, length),
  );
  // Members are read only when asked for: Entra lists groups with excludedAttributes=members.
  const members = list.wants('members')
    ? await membersOf(
        sql,
        ctx.organizationId,
        rows.map((g) => g.id),
      )
    : null;
  const resources = rows.map(
    (group) =>
      new SCIMMY.Schemas.Group(
        toScimGroup(group, members?.get(group.id)),
        'out',
        groupsLocation(ctx.app),
        list.attributes as never,
      ),
  );
  return listResponse(resources, total, list.startIndex);
}

/**
 * PATCH: every operation of one request in one transaction under the group's row lock; the
 * answer (204) carries the group's new ETag.
 */
export async function patchGroup(ctx: ScimRequest, id: string, body: unknown): Promise<void> {
  const operations = readPatchOperations(body);
  const { organizationId, actor, ifMatch } = ctx;
  const changes = operations.map(groupChange);
  const [only] = changes;
  if (changes.length === 1 && !only!.rename && !only!.replaceMembers && (only!.add.length || only!.remove.length)) {
    // The IdPs' commonest group PATCH (add or remove members): one statement, no transaction around it.
    ctx.version = await changeScimGroupMembers(ctx.app.sql, organizationId, id, only!, actor, ifMatch);
    ctx.touched = { type: 'Group', id };
    return;
  }
  ctx.version = await inTransaction(ctx.app.sql, async (tx) => {
    if (ifMatch) await claimScimGroupVersion(tx, organizationId, id, ifMatch);
    // Each core call locks the group (a SCIM group only), so concurrent PATCHes serialise.
    const nothingToDo = changes.every(
      (c) => !c.rename && !c.replaceMembers && c.add.length === 0 && c.remove.length === 0,
    );
    if (nothingToDo && !(await findScimGroup(tx, organizationId, id))) throw notFoundError('group', id);
    for (const change of changes) {
      if (change.rename) await updateGroup(tx, organizationId, id, change.rename, actor, SCIM_GROUPS);
      if (change.replaceMembers)
        await replaceGroupMembers(tx, organizationId, id, change.replaceMembers, actor, SCIM_GROUPS);
      if (change.add.length || change.remove.length) {
        await changeGroupMembers(
          tx,
          organizationId,
          id,
          { add: change.add, remove: change.remove },
          actor,
          SCIM_GROUPS,
        );
      }
    }
    return (await currentScimGroup(tx, organizationId, id)).version;
  });
  ctx.touched = { type: 'Group', id };
}

export interface GroupChange {
  rename?: { displayName?: string; externalId?: string | null };
  replaceMembers?: string[];
  add: string[];
  remove: string[];
}

/** One PATCH operation as a change of name and members (Okta's and Entra's shapes alike). */
export function groupChange(operation: PatchOperation): GroupChange {
  const change: GroupChange = { add: [], remove: [] };
  const value = operation.value === undefined ? undefined : normalizeValue(operation.value);
  const path = operation.path?.replace(/^urn:ietf:params:scim:schemas:core:2\.0:Group:/i, '');
  if (path === undefined) {
    if (!isObject(value))
      throw scimError(400, 'invalidValue', `a ${operation.op} without a path needs an object value`);
    for (const [key, inner] of Object.entries(value)) {
      if (key === 'id' || key === 'schemas' || key === 'meta') continue;
      mergeInto(change, groupChange({ op: operation.op, path: key, value: inner }));
    }
    return change;
  }
  const lower = path.toLowerCase();
  if (lower === 'displayname' || lower === 'externalid') {
    const field = lower === 'displayname' ? 'displayName' : 'externalId';
    if (operation.op === 'remove' || value === undefined) {
      if (field === 'displayName') throw scimError(400, 'mutability', 'displayName is required and cannot be removed');
      change.rename = { externalId: null };
    } else {
      if (typeof value !== 'string') throw scimError(400, 'invalidValue', `${field} must be a string`);
      change.rename = { [field]: value };
    }
    return change;
  }
  if (lower === 'members') {
    const ids = memberIds(value);
    if (operation.op === 'add') change.add = ids;
    else if (operation.op === 'replace') change.replaceMembers = ids;
    // `remove` with a value removes those members; without one, all of them.
    else if (value === undefined) change.replaceMembers = [];
    else change.remove = ids;
    return change;
  }
  const filtered = /^members\[(.+)\]$/i.exec(path);
  if (filtered && operation.op === 'remove') {
    change.remove = [memberFromFilter(filtered[1]!)];
    return change;
  }
  if (filtered) throw scimError(400, 'invalidPath', `use add or remove on members, not ${operation.op} on '${path}'`);
  throw scimError(400, 'invalidPath', `'${operation.path}' is not a Group attribute that can be patched`);
}

/** `members[value eq "id"]`: the one account the filter names. */
function memberFromFilter(text: string): string {
  const filter = parseFilter(text);
  if (
    filter.op !== 'compare' ||
    filter.compare !== 'eq' ||
    filter.attr.toLowerCase() !== 'value' ||
    typeof filter.value !== 'string'
  ) {
    throw scimError(400, 'invalidFilter', 'members can be selected only by value eq "<id>"');
  }
  return filter.value;
}

function memberIds(value: Json | undefined): string[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((member) => {
    const id = isObject(member) ? member.value : member;
    if (typeof id !== 'string' || id === '')
      throw scimError(400, 'invalidValue', 'each member needs a value (the user id)');
    return id;
  });
}

function mergeInto(target: GroupChange, from: GroupChange): void {
  if (from.rename) target.rename = { ...target.rename, ...from.rename };
  if (from.replaceMembers) target.replaceMembers = from.replaceMembers;
  target.add.push(...from.add);
  target.remove.push(...from.remove);
}

/** scimmy's handlers for the routes it serves (GET one, POST, PUT, DELETE). */
export const groupHandlers: ScimmyHandlers = {
  async egress(resource, ctx) {
    const group = resource.id ? await findScimGroup(ctx.app.sql, ctx.organizationId, resource.id) : null;
    if (!group) throw notFoundError('group', resource.id ?? '');
    ctx.touched = { type: 'Group', id: group.id };
    ctx.version = group.version;
    const members = excludesMembers(resource.attributes)
      ? undefined
      : (await membersOf(ctx.app.sql, ctx.organizationId, [group.id])).get(group.id);
    return toScimGroup(group, members);
  },
  async ingress(resource, instance, context) {
    const ctx = context as ScimRequest;
    const { displayName, externalId, members } = JSON.parse(JSON.stringify(instance)) as {
      displayName: string;
      externalId?: string;
      members?: { value: string }[];
    };
    const input = { displayName, externalId: externalId ?? null, members: (members ?? []).map((m) => m.value) };
    const group = resource.id
      ? await replaceScimGroup(ctx.app.sql, ctx.organizationId, resource.id, input, ctx.actor, ctx.ifMatch)
      : await createScimGroup(ctx.app.sql, ctx.organizationId, input, ctx.actor);
    ctx.touched = { type: 'Group', id: group.id };
    ctx.version = group.version;
    return toScimGroup(group, (await membersOf(ctx.app.sql, ctx.organizationId, [group.id])).get(group.id));
  },
  async degress(resource, ctx) {
    await deleteScimGroup(ctx.app.sql, ctx.organizationId, resource.id!, ctx.actor, ctx.ifMatch);
    ctx.touched = { type: 'Group', id: resource.id! };
  },
};

/** scimmy's parsed `attributes`/`excludedAttributes` say whether members are wanted. */
function excludesMembers(attributes: unknown): boolean {
  const text = JSON.stringify(attributes ?? null);
  return (
    /"members":\["np"\]/.test(text) || (attributes !== undefined && attributes !== null && !text.includes('"members"'))
  );
}
