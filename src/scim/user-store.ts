import { ensureAccount, isValidEmail, normalizeEmail } from '../core/accounts.ts';
import type { Actor } from '../core/actor.ts';
import { conflict, DomainError, invalid, isUniqueViolation, notFound } from '../core/errors.ts';
import { recordChange } from '../core/events.ts';
import { isUuid } from '../core/ids.ts';
import { getMembership, joinOrganization, reactivateMember, removeMember, suspendMember } from '../core/memberships.ts';
import { firstRow, inTransaction, type Db, type Sql, type Tx } from '../storage/database.ts';
import { totalFromPage, type ListQuery } from './list.ts';
import type { JsonObject } from './normalize.ts';

/**
 * Provisioned users: the IdP's document of a person in one organization, tied to the person's
 * account and membership. Creating one makes the person a member (source `scim`); `active`
 * suspends and reactivates the membership; deleting ends it (the account stays).
 */
export interface ScimUserRow {
  organizationId: string;
  accountId: string;
  userName: string;
  externalId: string | null;
  active: boolean;
  displayName: string | null;
  emails: string[];
  resource: JsonObject;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/** The parts of a SCIM User document kept in columns; the rest lives in `resource`. */
type UserFields = Pick<ScimUserRow, 'userName' | 'externalId' | 'active' | 'displayName' | 'emails' | 'resource'>;

export async function findUser(db: Db, organizationId: string, id: string, lock = db``): Promise<ScimUserRow | null> {
  if (!isUuid(id)) return null;
  const [row] = await db<ScimUserRow[]>`
    select * from scim_users where organization_id = ${organizationId} and account_id = ${id} ${lock}`;
  return row ?? null;
}

export async function lockUser(tx: Tx, organizationId: string, id: string): Promise<ScimUserRow> {
  const row = await findUser(tx, organizationId, id, tx`for update`);
  if (!row) throw notFound('user', { id });
  return row;
}

/** One page in a stable order; the total is counted only when the page alone cannot tell it. */
export async function listUsers(
  sql: Sql,
  organizationId: string,
  query: ListQuery,
): Promise<{ rows: ScimUserRow[]; total: number }> {
  const rows = await sql<ScimUserRow[]>`
    select * from scim_users u
    where u.organization_id = ${organizationId} and ${query.where}
    order by ${query.orderBy}
    offset ${query.offset} limit ${query.limit}`;
  const total =
    totalFromPage(query, rows.length) ??
    (
      await sql<{ total: number }[]>`
    select count(*)::int as total from scim_users u where u.organization_id = ${organizationId} and ${query.where}`
    )[0]!.total;
  return { rows, total };
}

export async function createUser(
  sql: Sql,
  organizationId: string,
  document: JsonObject,
  actor: Actor,
): Promise<ScimUserRow> {
  const fields = userFields(document);
  const email = accountEmail(document, fields);
  const name = (document.name ?? {}) as { givenName?: string; familyName?: string };
  return inTransaction(sql, async (tx) => {
    // The insert finds the account the upsert before it wrote (statements on one connection run
    // in order), so both travel in one round trip. No savepoint needed: a clash inserts nothing,
    // and then the existing row says which one.
    const [account, [row]] = await Promise.all([
      ensureAccount(tx, { email, givenName: name.givenName ?? null, familyName: name.familyName ?? null }),
      tx<ScimUserRow[]>`
        insert into scim_users (organization_id, account_id, user_name, external_id, active, display_name, emails, resource)
        select ${organizationId}, a.id, ${fields.userName}, ${fields.externalId}, ${fields.active},
               ${fields.displayName}, ${fields.emails}::text[], ${tx.json(fields.resource as never)}
        from accounts a where lower(a.email) = lower(${email})
        on conflict do nothing
        returning *`,
    ]);
    if (!row) throw await clash(tx, organizationId, fields.userName);
    // The announcement does not depend on the join: sent alongside it (pipelined).
    await Promise.all([
      (async () => {
        await joinOrganization(
          tx,
          { organizationId, accountId: account.id, source: 'scim', liftSuspension: true },
          actor,
        );
        if (!fields.active) await suspendMember(tx, organizationId, account.id, actor);
      })(),
      announce(tx, row, 'scim.user_created', 'user.provisioned', actor, {
        userName: row.userName,
        externalId: row.externalId,
      }),
    ]);
    return row;
  });
}

/**
 * Replaces the document of a user locked by the caller (PUT, or the result of a PATCH) and
 * brings the membership in line with `active`.
 */
export async function replaceUser(
  tx: Tx,
  current: ScimUserRow,
  document: JsonObject,
  actor: Actor,
): Promise<ScimUserRow> {
  const fields = userFields(document);
  const update = (db: Db) => db<ScimUserRow[]>`
    update scim_users set
      user_name = ${fields.userName}, external_id = ${fields.externalId}, active = ${fields.active},
      display_name = ${fields.displayName}, emails = ${fields.emails}::text[], resource = ${db.json(fields.resource)},
      version = version + 1, updated_at = now()
    where organization_id = ${current.organizationId} and account_id = ${current.accountId}
    returning *`;
  const changed = changedAttributes(current, fields);
  const followUps = (): Promise<unknown>[] => [
    ...(fields.active !== current.active ? [setActive(tx, current, fields.active, actor)] : []),
    ...(changed.length > 0 ? [announce(tx, current, 'scim.user_updated', 'user.updated', actor, { changed })] : []),
  ];
  // Only a new userName can clash; only then is a savepoint worth its round trips, and nothing
  // else may run inside it (a rollback to it would undo that too).
  if (fields.userName.toLowerCase() !== current.userName.toLowerCase()) {
    const row = await renameUnique(tx, fields.userName, update);
    await Promise.all(followUps());
    return row;
  }
  // The membership change and the announcement do not depend on the update: sent with it
  // (pipelined), a deactivation takes one round trip fewer.
  const [rows] = await Promise.all([update(tx), ...followUps()]);
  return firstRow(rows as ScimUserRow[]);
}

export async function deleteUser(sql: Sql, organizationId: string, id: string, actor: Actor): Promise<void> {
  await inTransaction(sql, async (tx) => {
    const row = await lockUser(tx, organizationId, id);
    await tx`delete from scim_users where organization_id = ${organizationId} and account_id = ${row.accountId}`;
    const membership = await getMembership(tx, organizationId, row.accountId);
    if (membership && membership.status !== 'removed') await removeMember(tx, organizationId, row.accountId, actor);
    await announce(tx, row, 'scim.user_deleted', 'user.deprovisioned', actor, { userName: row.userName });
  });
}

/**
 * Brings the membership in line with `active`. The membership may have moved on its own (an
 * admin removed the person, an invitation is pending): then there is nothing to suspend, and
 * reactivating means joining again.
 */
async function setActive(tx: Tx, user: ScimUserRow, active: boolean, actor: Actor): Promise<void> {
  const { organizationId, accountId } = user;
  if (!active) {
    await ignoring(['not_found', 'rule_violation'], () => suspendMember(tx, organizationId, accountId, actor));
    return;
  }
  const reactivated = await ignoring(['not_found', 'rule_violation'], () =>
    reactivateMember(tx, organizationId, accountId, actor),
  );
  if (!reactivated)
    await joinOrganization(tx, { organizationId, accountId, source: 'scim', liftSuspension: true }, actor);
}

/** Runs a core change; a refusal for one of `codes` (thrown before any write) yields null. */
async function ignoring<T>(codes: DomainError['code'][], fn: () => Promise<T>): Promise<T | null> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof DomainError && codes.includes(error.code)) return null;
    throw error;
  }
}

async function renameUnique(
  tx: Tx,
  userName: string,
  update: (db: Db) => Promise<ScimUserRow[]>,
): Promise<ScimUserRow> {
  try {
    return firstRow(await tx.savepoint((sp) => update(sp)));
  } catch (error) {
    if (isUniqueViolation(error, 'scim_users_user_name')) throw userNameTaken(userName);
    throw error;
  }
}

/** Why an insert clashed: the userName is taken, or the person (by email) is provisioned under another. */
async function clash(tx: Tx, organizationId: string, userName: string) {
  const [taken] =
    await tx`select 1 from scim_users where organization_id = ${organizationId} and lower(user_name) = lower(${userName})`;
  if (taken) return userNameTaken(userName);
  return conflict('this person (by email address) is already provisioned under another userName', { userName });
}

const userNameTaken = (userName: string) =>
  conflict(`a user with userName ${JSON.stringify(userName)} already exists`, { userName });

async function announce(
  tx: Tx,
  user: Pick<ScimUserRow, 'organizationId' | 'accountId'>,
  action: string,
  event: string,
  actor: Actor,
  details: Record<string, unknown>,
) {
  const target = { type: 'account', id: user.accountId };
  await recordChange(tx, user.organizationId, actor, {
    action,
    target,
    details,
    event,
    payload: { accountId: user.accountId, ...details },
  });
}

function userFields(document: JsonObject): UserFields {
  const {
    id: _id,
    meta: _meta,
    schemas: _schemas,
    password: _password,
    userName,
    externalId,
    active,
    displayName,
    ...rest
  } = document;
  if (typeof userName !== 'string' || userName.trim() === '') throw invalid('userName is required');
  const emails = Array.isArray(rest.emails)
    ? [
        ...new Set(
          rest.emails
            .map((e) => (e as { value?: unknown }).value)
            .filter((v): v is string => typeof v === 'string')
            .map((v) => v.toLowerCase()),
        ),
      ]
    : [];
  return {
    userName: userName.trim(),
    externalId: typeof externalId === 'string' ? externalId : null,
    active: active !== false,
    displayName: typeof displayName === 'string' ? displayName : null,
    emails,
    resource: displayName === undefined ? rest : { displayName, ...rest },
  };
}

/**
 * The email that identifies the person's account: the primary email, else a work email, else
 * the first, else the userName when it is an address (Entra's UPN usually is).
 */
function accountEmail(document: JsonObject, fields: UserFields): string {
  const emails = (Array.isArray(document.emails) ? document.emails : []) as {
    value?: string;
    primary?: boolean;
    type?: string;
  }[];
  const candidates = [
    emails.find((e) => e.primary),
    emails.find((e) => e.type === 'work'),
    emails[0],
    { value: fields.userName },
  ];
  for (const candidate of candidates) {
    if (candidate?.value && isValidEmail(candidate.value)) return normalizeEmail(candidate.value);
  }
  throw invalid('a user needs an email address (in emails, or as the userName)');
}

function changedAttributes(before: ScimUserRow, after: UserFields): string[] {
  const changed: string[] = [];
  if (before.userName !== after.userName) changed.push('userName');
  if (before.externalId !== after.externalId) changed.push('externalId');
  if (before.active !== after.active) changed.push('active');
  const keys = new Set([...Object.keys(before.resource), ...Object.keys(after.resource)]);
  for (const key of keys) {
    if (JSON.stringify(before.resource[key]) !== JSON.stringify(after.resource[key])) changed.push(key);
  }
  return changed;
}
