import type { RequestHandler } from 'express';
import SCIMMY from 'scimmy';
import { z } from 'zod';
import type { Config } from '../config.ts';
import { DomainError } from '../core/errors.ts';
import { inTransaction, type Sql } from '../storage/database.ts';
import type { ScimRequest } from './auth.ts';
import { errorBody, scimError, toScimError, type ScimError } from './errors.ts';
import { etagOf, ifMatchOf } from './etags.ts';
import { groupsLocation, patchGroup } from './groups.ts';
import { normalizedBody } from './normalize-body.ts';
import { isObject, type Json } from './normalize.ts';
import { refusedByRateLimit } from './rate-limit.ts';
import { resourceTargetOf } from './resource-path.ts';
import { createUserResponse, patchUser, usersLocation } from './users.ts';

/**
 * POST /scim/v2/Bulk (RFC 7644 §3.7). Each operation calls what its single request calls (the
 * same functions of users.ts and groups.ts, or scimmy's resource for PUT, DELETE and POST
 * /Groups, as scimmy-routers does), so it has the same effect, audit entry and event; what a
 * bulk saves is the HTTP request, authentication, rate limiting and logging of each operation.
 * An operation's `version` is the If-Match of its single request (412 when stale, as etags.ts
 * reads it: ignored on a POST), and a successful one answers the resource's new ETag as `version`.
 *
 * Operations run in the request's order, except that an operation whose data or path names
 * `bulkId:<id>` runs after the operation defining that bulkId (even a later one). A circular or
 * unknown reference fails that operation (409 invalidValue), as does a reference to an operation
 * that failed. Consecutive user creates that cannot affect each other (no references, no shared
 * userName or email) run several at once over the pool: the result is the one of running them in
 * order (§3.7 lets a service provider optimize so), and never more of them than `failOnErrors`
 * still allows to fail, so the request stops exactly where it would in order.
 */

export const BULK_REQUEST = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
const BULK_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:BulkResponse';

const operationSchema = z.object({
  method: z
    .string()
    .transform((m) => m.toUpperCase())
    .pipe(z.enum(['POST', 'PUT', 'PATCH', 'DELETE'])),
  // As the single requests' routes match: any case, an optional trailing slash. A path, not a URL: no query.
  path: z
    .string()
    .refine(
      (path) => !/[?#]/.test(path) && resourceTargetOf(path) !== undefined,
      'must be /Users, /Groups, /Users/{id} or /Groups/{id}',
    ),
  bulkId: z.string().min(1).max(200).optional(),
  version: z.string().optional(),
  data: z.unknown().optional(),
});

const requestSchema = z.object({
  schemas: z.array(z.string()).refine((s) => s.includes(BULK_REQUEST), `schemas must include ${BULK_REQUEST}`),
  failOnErrors: z.number().int().min(1).optional(),
  Operations: z.array(operationSchema),
});

type Operation = z.infer<typeof operationSchema>;

/** One operation as planned: its resource type, target id (when in the path), and the bulkIds it names. */
interface Planned {
  index: number;
  op: Operation;
  type: 'Users' | 'Groups';
  pathId?: string;
  references: string[];
  /** Known before it runs: a circular or unknown reference. */
  refusal?: ScimError;
}

interface Outcome {
  method: Operation['method'];
  bulkId?: string;
  version?: string;
  location?: string;
  status: string;
  response?: unknown;
}

const REFERENCE = /^bulkId:(.+)$/;

export function bulkRoute(config: Config['scimBulk'], rateLimit: Config['scimRateLimit']): RequestHandler {
  return (req, res, next) => {
    void (async () => {
      const scim = req.scim!;
      const body: unknown = req.body;
      const count = isObject(body) && Array.isArray(body.Operations) ? body.Operations.length : 0;
      if (count > config.maxOperations) {
        throw scimError(
          413,
          null,
          `the bulk request has ${count} operations; maxOperations is ${config.maxOperations}`,
        );
      }
      const parsed = requestSchema.safeParse(body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw scimError(400, 'invalidSyntax', `${issue.path.join('.') || 'BulkRequest'}: ${issue.message}`);
      }
      const plan = planOperations(parsed.data.Operations);
      // The request paid one token of the rate limit; its other operations pay one each.
      if (await refusedByRateLimit(scim.app.sql, rateLimit, scim.credentialId, count - 1, res)) return;
      const outcomes = await runPlan(scim, plan, parsed.data.failOnErrors, config.concurrency);
      res
        .status(200)
        .type('application/scim+json')
        .send(JSON.stringify({ schemas: [BULK_RESPONSE], Operations: outcomes }));
    })().catch(next);
  };
}

/** Checks the operations together (bulkIds unique, POST with a bulkId, ids where needed) and orders them. */
function planOperations(operations: Operation[]): Planned[] {
  const definers = new Map<string, number>();
  const planned = operations.map((op, index): Planned => {
    // The canonical type from here on (locations, messages), whatever case the path was in.
    const { type, rest: id } = resourceTargetOf(op.path)!;
    const where = `Operations.${index}`;
    if (op.method === 'POST' && id !== undefined)
      throw scimError(400, 'invalidSyntax', `${where}: a POST goes to /${type}, not to one resource`);
    if (op.method !== 'POST' && id === undefined)
      throw scimError(400, 'invalidSyntax', `${where}: a ${op.method} needs the resource in its path (/${type}/{id})`);
    if (op.method === 'POST') {
      if (op.bulkId === undefined) throw scimError(400, 'invalidSyntax', `${where}: a POST needs a bulkId`);
      if (definers.has(op.bulkId))
        throw scimError(400, 'invalidSyntax', `${where}: bulkId ${JSON.stringify(op.bulkId)} is used twice`);
      definers.set(op.bulkId, index);
    }
    const references = new Set<string>();
    collectReferences(op.data, references);
    const pathId = id === undefined ? undefined : decodedSegment(id);
    const fromPath = pathId === undefined ? null : REFERENCE.exec(pathId);
    if (fromPath) references.add(fromPath[1]!);
    return { index, op, type, pathId, references: [...references] };
  });

  // Depth first in request order: an operation comes after those whose bulkIds it names.
  const order: Planned[] = [];
  const state = new Map<number, 'visiting' | 'done'>();
  const visit = (p: Planned) => {
    if (state.get(p.index)) return;
    state.set(p.index, 'visiting');
    for (const bulkId of p.references) {
      const definer = definers.get(bulkId);
      if (definer === undefined) {
        p.refusal ??= scimError(409, 'invalidValue', `bulkId:${bulkId} is not defined by a POST of this request`);
      } else if (state.get(definer) === 'visiting') {
        p.refusal ??= scimError(409, 'invalidValue', `bulkId:${bulkId} is a circular reference`);
      } else {
        visit(planned[definer]!);
      }
    }
    state.set(p.index, 'done');
    order.push(p);
  };
  planned.forEach(visit);
  return order;
}

function decodedSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw scimError(
      400,
      'invalidSyntax',
      `the path segment ${JSON.stringify(segment)} is not percent-encoded correctly`,
    );
  }
}

function collectReferences(value: unknown, into: Set<string>): void {
  if (typeof value === 'string') {
    const match = REFERENCE.exec(value);
    if (match) into.add(match[1]!);
  } else if (Array.isArray(value)) {
    for (const item of value) collectReferences(item, into);
  } else if (isObject(value)) {
    for (const item of Object.values(value)) collectReferences(item, into);
  }
}

/** `value` with every `bulkId:<id>` string replaced by the id of the resource that operation made. */
function resolveReferences(value: unknown, created: Map<string, string>): unknown {
  if (typeof value === 'string') {
    const match = REFERENCE.exec(value);
    return match ? created.get(match[1]!) : value;
  }
  if (Array.isArray(value)) return value.map((item) => resolveReferences(item, created));
  if (isObject(value))
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveReferences(v, created)]));
  return value;
}

async function runPlan(
  scim: ScimRequest,
  plan: Planned[],
  failOnErrors: number | undefined,
  concurrency: number,
): Promise<Outcome[]> {
  const outcomes = new Map<number, Outcome>();
  const created = new Map<string, string>();
  let errors = 0;
  for (let next = 0; next < plan.length;) {
    // Never more at once than may still fail: if all of them fail, the last one is the one that stops the request.
    const room = Math.min(
      concurrency * CREATES_PER_TRANSACTION,
      failOnErrors === undefined ? Infinity : failOnErrors - errors,
    );
    const window = takeIndependentCreates(plan, next, room);
    const results =
      window.length === 1
        ? [await runPlanned(scim, window[0]!, created)]
        : (await Promise.all(chunks(window).map((chunk) => createTogether(scim, chunk, created)))).flat();
    window.forEach((p, i) => {
      const { outcome, id } = results[i]!;
      outcomes.set(p.index, outcome);
      if (id === undefined) errors++;
      else if (p.op.bulkId !== undefined) created.set(p.op.bulkId, id);
    });
    next += window.length;
    if (failOnErrors !== undefined && errors >= failOnErrors) break;
  }
  // Reported in the request's order; operations not run (failOnErrors) are left out.
  return [...outcomes.entries()].sort(([a], [b]) => a - b).map(([, outcome]) => outcome);
}

/** User creates one transaction holds at most: one commit (a WAL flush) for them all. */
const CREATES_PER_TRANSACTION = 50;

/** A window of creates as its transactions (at most `concurrency` of them, run at once). */
function chunks<T>(items: T[]): T[][] {
  const parts: T[][] = [];
  for (let i = 0; i < items.length; i += CREATES_PER_TRANSACTION)
    parts.push(items.slice(i, i + CREATES_PER_TRANSACTION));
  return parts;
}

/**
 * Independent user creates, one after another in one transaction: each is the single statement
 * (or the refusal before it) of its single request, so a create that fails has written nothing
 * its single request would not have written, and they share the commit. Should a statement fail
 * in the database (the statement's guard sending a create to the longer path, a lost
 * connection), the transaction is rolled back and the creates run each on its own, as single
 * requests do; should the commit fail, none of them happened.
 */
async function createTogether(
  scim: ScimRequest,
  batch: Planned[],
  created: Map<string, string>,
): Promise<{ outcome: Outcome; id?: string }[]> {
  let ran = false;
  try {
    return await inTransaction(scim.app.sql, async (tx) => {
      // Several run at once: each counts in a counter shard no other holds (migration 118).
      const shared: ScimRequest = { ...scim, app: { ...scim.app, sql: tx as unknown as Sql } };
      const results = [];
      for (const p of batch) results.push(await runPlanned(shared, p, created, true));
      ran = true;
      return results;
    });
  } catch (error) {
    if (ran) return batch.map((p) => failed(scim, p, undefined, error));
    const results = [];
    for (const p of batch) results.push(await runPlanned(scim, p, created));
    return results;
  }
}

/**
 * The operation at `start`, with the user creates right after it when it is one: those that name no
 * bulkId and share no userName or email address with one another (so no order among them matters).
 */
function takeIndependentCreates(plan: Planned[], start: number, room: number): Planned[] {
  const first = plan[start]!;
  if (!isPlainUserCreate(first)) return [first];
  const keys = new Set(identityKeys(first));
  const batch = [first];
  for (let i = start + 1; i < plan.length && batch.length < room; i++) {
    const candidate = plan[i]!;
    const candidateKeys = identityKeys(candidate);
    if (!isPlainUserCreate(candidate) || candidateKeys.some((k) => keys.has(k))) break;
    candidateKeys.forEach((k) => keys.add(k));
    batch.push(candidate);
  }
  return batch;
}

/** A user create naming no bulkId, created active (an inactive one takes the core's longer path). */
const isPlainUserCreate = (p: Planned) =>
  p.op.method === 'POST' &&
  p.type === 'Users' &&
  p.references.length === 0 &&
  !p.refusal &&
  isObject(p.op.data) &&
  [undefined, true, 'true', 'True'].includes(p.op.data.active as never);

/** The userName and email addresses of a user create, lower-cased: what makes two creates clash. */
function identityKeys(p: Planned): string[] {
  const data = p.op.data;
  if (!isObject(data)) return [];
  const emails = Array.isArray(data.emails) ? data.emails.map((e) => (isObject(e) ? e.value : null)) : [];
  return [data.userName, ...emails].filter((v): v is string => typeof v === 'string').map((v) => v.toLowerCase());
}

/**
 * Runs one operation; `id` is the resource's when it succeeded. In a shared transaction, an error
 * of the database (not a refusal) is thrown: the transaction is lost, not just this operation.
 */
async function runPlanned(
  scim: ScimRequest,
  p: Planned,
  created: Map<string, string>,
  inSharedTransaction = false,
): Promise<{ outcome: Outcome; id?: string }> {
  const { op, type } = p;
  const unresolved = p.references.find((bulkId) => !created.has(bulkId));
  const id = p.pathId === undefined ? undefined : (resolveReferences(p.pathId, created) as string | undefined);
  const base = type === 'Users' ? usersLocation(scim.app) : groupsLocation(scim.app);
  const location = id !== undefined ? `${base}/${id}` : undefined;
  const outcome = { method: op.method, ...(op.bulkId !== undefined ? { bulkId: op.bulkId } : {}) };
  try {
    if (p.refusal) throw p.refusal;
    if (unresolved !== undefined)
      throw scimError(409, 'invalidValue', `bulkId:${unresolved} names an operation that failed`);
    // Each operation has a context of its own (the request log keeps the bulk request's own).
    const ctx: ScimRequest = {
      ...scim,
      touched: undefined,
      version: undefined,
      ifMatch: ifMatchOf(op.method, op.version),
    };
    const data = resolveReferences(op.data, created) as Json | undefined;
    const { status, resource } = await perform(ctx, op.method, type, id, data);
    const resourceId = (resource as { id?: string } | undefined)?.id ?? id!;
    return {
      id: resourceId,
      outcome: {
        ...outcome,
        location: `${base}/${resourceId}`,
        // The single request's ETag (which a group PATCH's 204 has too).
        ...(ctx.version !== undefined ? { version: etagOf(ctx.version) } : {}),
        status: String(status),
      },
    };
  } catch (error) {
    const refusal = error instanceof SCIMMY.Types.Error || error instanceof DomainError;
    if (inSharedTransaction && !refusal) throw error;
    return failed(scim, p, location, error);
  }
}

function failed(scim: ScimRequest, p: Planned, location: string | undefined, error: unknown) {
  const failure = toScimError(error, (e) => scim.app.log.error({ err: e }, 'SCIM bulk operation failed'));
  return {
    outcome: {
      method: p.op.method,
      ...(p.op.bulkId !== undefined ? { bulkId: p.op.bulkId } : {}),
      ...(location ? { location } : {}),
      status: String(failure.status),
      response: errorBody(failure),
    },
  };
}

/** The operation, through what its single request calls (router.ts, and scimmy-routers for PUT, DELETE, POST /Groups). */
async function perform(
  ctx: ScimRequest,
  method: Operation['method'],
  type: 'Users' | 'Groups',
  id: string | undefined,
  data: Json | undefined,
): Promise<{ status: number; resource?: unknown }> {
  const resource = type === 'Users' ? SCIMMY.Resources.User : SCIMMY.Resources.Group;
  const body = () => {
    if (!isObject(data)) throw scimError(400, 'invalidSyntax', `a ${method} operation needs an object as its data`);
    return normalizedBody(type, data);
  };
  switch (method) {
    case 'POST':
      if (type === 'Users') return { status: 201, resource: await createUserResponse(ctx, body(), {}) };
      return { status: 201, resource: await new resource().write(body(), ctx) };
    case 'PUT':
      return { status: 200, resource: await new resource(id).write(body(), ctx) };
    case 'PATCH':
      if (type === 'Users') return { status: 200, resource: await patchUser(ctx, id!, data, {}) };
      await patchGroup(ctx, id!, data);
      return { status: 204 };
    case 'DELETE':
      await new resource(id).dispose(ctx);
      return { status: 204 };
  }
}
