import { accountUpsert, ensureAccount, isValidEmail, normalizeEmail } from './accounts.ts';
import type { Actor } from './actor.ts';
import { heldPermissions } from './authority.ts';
import { batchProvisioningTurn, countInOneShard } from './batch-provisioning-lock.ts';
import { conflict, DomainError, invalid, isUniqueViolation, notFound, preconditionFailed } from './errors.ts';
import { changeRecordSteps, recordChange } from './events.ts';
import { isUuid } from './ids.ts';
import {
  getMembership,
  joinOrganization,
  newMemberSteps,
  reactivateMember,
  removeMember,
  statusChangeSteps,
  suspendMember,
} from './memberships.ts';
import { firstRow, inTransaction, type Db, type Fragment, type Sql, type Tx } from '../storage/database.ts';
import { sharedTransactions } from '../storage/shared-transactions.ts';

/**
 * Directory users: the IdP's document of a person in one organization (SCIM Users), tied to the
 * person's account and membership. Provisioning one makes the person a member (source `scim`);
 * `active` suspends and reactivates the membership; deprovisioning ends it (the account stays).
 *
 * Each write is one SQL statement, so one round trip: a CTE whose steps are the document's
 * write, the membership's change (the steps memberships.ts builds, the same SQL its own changes
 * run) and the audit entries and events, all in the statement's one transaction. A replace
 * reads the document first (without a lock) and writes only if its `version` is still the one
 * read (optimistic concurrency; a lost race reads and applies again). The few cases a statement
 * does not cover take the step-by-step path under row locks, which is the reference: a pending
 * invitation to accept, a user created inactive, the single-organization policy, a caller
 * limited by its own permissions. A statement that meets one midway aborts itself (the guard
 * function of migration 065) and the step-by-step path runs instead.
 *
 * `version` is the SCIM meta.version: every write bumps it. Writes take `ifMatch`, the versions
 * an If-Match header names (undefined: no condition): a user at none of them is refused with
 * precondition_failed, checked in the write's own statement (or under its row lock), so nothing
 * changes.
 */
export interface DirectoryUser {
  organizationId: string;
  accountId: string;
  userName: string;
  externalId: string | null;
  active: boolean;
  displayName: string | null;
  emails: string[];
  resource: Document;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/** A SCIM User document (JSON). */
export type Document = Record<string, unknown>;

/** The parts of a document kept in columns; the rest lives in `resource`. */
type UserFields = Pick<DirectoryUser, 'userName' | 'externalId' | 'active' | 'displayName' | 'emails' | 'resource'>;

/**
 * A page of a list in SQL (the SCIM adapter compiles filters and order; `u` is the table).
 * `where` null: no filter, the whole organization, whose total the counters know.
 */
export interface DirectoryQuery {
  where: Fragment | null;
  orderBy: Fragment;
  offset: number;
  limit: number;
}

/** How many times a replace reads and applies again after losing a race, before it takes the lock. */
const OPTIMISTIC_ATTEMPTS = 3;

export async function findDirectoryUser(
  db: Db,
  organizationId: string,
  id: string,
  lock = db``,
): Promise<DirectoryUser | null> {
  if (!isUuid(id)) return null;
  const [row] = await db<DirectoryUser[]>`
    select * from scim_users where organization_id = ${organizationId} and account_id = ${id} ${lock}`;
  return row ?? null;
}

/**
 * One page in a stable order; `totalOf` answers the total when the page alone tells it, else the
 * counters of migration 111 do (no filter) or a count of the matches. A page
 * past the first finds its keys first and reads only its own rows: the rows it skips are then
 * read from the primary key's index (an index-only scan) instead of the table, a third of the
 * cost of a deep page (SCIM pages by startIndex, so the skipped rows are counted either way).
 */
export async function listDirectoryUsers(
  sql: Sql,
  organizationId: string,
  query: DirectoryQuery,
  totalOf: (rows: number) => number | null,
): Promise<{ rows: DirectoryUser[]; total: number }> {
  const matching = sql`scim_users u where u.organization_id = ${organizationId} and ${query.where ?? sql`true`}`;
  const rows =
    query.offset === 0
      ? await sql<DirectoryUser[]>`select * from ${matching} order by ${query.orderBy} limit ${query.limit}`
      : await sql<DirectoryUser[]>`
          select u.* from (
            select u.account_id from ${matching} order by ${query.orderBy} offset ${query.offset} limit ${query.limit}
          ) page join scim_users u on u.organization_id = ${organizationId} and u.account_id = page.account_id
          order by ${query.orderBy}`;
  const count = () =>
    query.where
      ? sql<{ total: number }[]>`select count(*)::int as total from ${matching}`
      : countDirectoryUsers(sql, organizationId);
  const total = totalOf(rows.length) ?? (await count())[0]!.total;
  return { rows, total };
}

/** The organization's users, from the counters of migration 111: at most 16 rows read, whatever its size. */
function countDirectoryUsers(sql: Sql, organizationId: string) {
  return sql<{ total: number }[]>`
    select coalesce(sum(n), 0)::int as total from scim_user_counts where organization_id = ${organizationId}`;
}

/**
 * batchProvisioningTurn as the step `turn` of a statement. A step runs when a step reads it (an
 * unread one never does): the statement's first write must read it, so that it writes after it.
 */
const turnStep = (db: Db, organizationId: string) =>
  db`turn as materialized (${batchProvisioningTurn(db, organizationId)})`;

/** batchProvisioningTurn as a statement, sent at once: ahead of those the transaction sends next. */
const takeBatchProvisioningTurn = (tx: Tx, organizationId: string) =>
  tx`${batchProvisioningTurn(tx, organizationId)}`.execute();

/** Provisions a user: the person's account (by email) joins the organization. */
export async function provisionUser(
  sql: Sql,
  organizationId: string,
  document: Document,
  actor: Actor,
): Promise<DirectoryUser> {
  const fields = userFields(document);
  const account = accountOf(document, fields);
  if (!fields.active || !inOneStatement(actor)) return provisionStepByStep(sql, organizationId, fields, account, actor);
  return withOthers(sql, organizationId, (db) => provisionInOneStatement(db, organizationId, fields, account, actor));
}

/**
 * The one-statement writes of an organization's users (create, activation, delete) that arrive
 * while others are being written share the next transaction (an IdP's first sync or a mass
 * deactivation sends them many at once): one commit for them all. Such a transaction counts all
 * its writes in one counter shard of its own, so two of them run side by side.
 */
const userWrites = sharedTransactions({
  open: (tx, organizationId, lane) => countInOneShard(tx, organizationId, lane),
  isAnswer: (error) => error instanceof DomainError,
});

/**
 * Runs `write` with the user writes of the organization arriving meanwhile (userWrites), or as
 * it is in the caller's own transaction (a /Bulk window). Where a statement's guard sends a
 * shared write to the longer path, that path's first statement fails (the guard aborted the
 * transaction), and every write of the batch runs again on its own.
 */
function withOthers<T>(sql: Sql, organizationId: string, write: (db: Sql) => Promise<T>): Promise<T> {
  return 'savepoint' in sql ? write(sql) : userWrites(sql, organizationId, write);
}

async function provisionInOneStatement(
  sql: Sql,
  organizationId: string,
  fields: UserFields,
  account: ReturnType<typeof accountOf>,
  actor: Actor,
): Promise<DirectoryUser> {
  const accountId = sql`(select id from account)`;
  const rows = await guarded(
    () => sql<(DirectoryUser & { accountId: string | null })[]>`
    with ${turnStep(sql, organizationId)},
    account as (${accountUpsert(sql, account, sql`turn`)}),
    usr as (
      insert into scim_users (organization_id, account_id, user_name, external_id, active, display_name, emails, resource)
      select ${organizationId}, a.id, ${fields.userName}, ${fields.externalId}, true,
             ${fields.displayName}, ${fields.emails}::text[], ${sql.json(fields.resource as never)}
      from account a
      on conflict do nothing
      returning *
    ),
    ${activationSteps(sql, organizationId, accountId, actor, sql`exists (select 1 from usr)`)},
    ${announceSteps(sql, organizationId, actor, 'created', {
      action: 'scim.user_created',
      event: 'user.provisioned',
      details: { userName: fields.userName, externalId: fields.externalId },
      rows: sql`usr`,
    })}
    select u.*, ${activationGuard(sql, sql`exists (select 1 from usr)`)} as guarded
    from (select 1) one left join usr u on true`,
  );
  const row = rows?.[0];
  if (row === undefined) return provisionStepByStep(sql, organizationId, fields, account, actor);
  // Nothing inserted: the userName is taken, or the person is provisioned under another.
  if (!row.accountId) throw await clash(sql, organizationId, fields.userName);
  return withoutGuard(row);
}

/**
 * Replaces a user's document with what `edit` makes of the current one (PUT, or a PATCH applied
 * to it); null from `edit` leaves it as it is. The membership follows `active`.
 */
export async function replaceDirectoryUser(
  sql: Sql,
  organizationId: string,
  id: string,
  edit: (current: DirectoryUser) => Document | null,
  actor: Actor,
  ifMatch?: readonly number[],
): Promise<DirectoryUser> {
  if (inOneStatement(actor)) {
    for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
      const current = await findDirectoryUser(sql, organizationId, id);
      if (!current) throw notFound('user', { id });
      // The write below applies only at this version, so the check holds at the write too.
      checkVersion(current, ifMatch);
      const document = edit(current);
      if (document === null) return current;
      const written = await writeIfUnchanged(sql, current, userFields(document), actor);
      if (written === 'longer path') break;
      if (written) return written;
    }
  }
  return inTransaction(sql, async (tx) => {
    const current = await lockDirectoryUser(tx, organizationId, id);
    checkVersion(current, ifMatch);
    const document = edit(current);
    return document === null ? current : replaceStepByStep(tx, current, userFields(document), actor);
  });
}

/**
 * Sets only `active` (the IdPs' commonest PATCH: deactivation and reactivation), reading
 * nothing first: one statement that locks the row, writes and follows with the membership.
 */
export async function setDirectoryUserActive(
  sql: Sql,
  organizationId: string,
  id: string,
  active: boolean,
  actor: Actor,
  ifMatch?: readonly number[],
): Promise<DirectoryUser> {
  if (!isUuid(id)) throw notFound('user', { id });
  const byReplacing = (db: Sql) =>
    replaceDirectoryUser(db, organizationId, id, (current) => ({ ...documentOf(current), active }), actor, ifMatch);
  // A conditional one takes the read-and-write path, which checks the version it writes at.
  if (!inOneStatement(actor) || ifMatch) return byReplacing(sql);
  return withOthers(sql, organizationId, async (sql) => {
    const accountId = sql`${id}::uuid`;
    const flips = sql`exists (select 1 from before where active <> ${active})`;
    const rows = await guarded(
      () => sql<(DirectoryUser & { accountId: string | null })[]>`
      with before as (
        select active from scim_users where organization_id = ${organizationId} and account_id = ${id} for update
      ),
      usr as (
        update scim_users s set active = ${active}, version = s.version + 1, updated_at = now()
        from before
        where s.organization_id = ${organizationId} and s.account_id = ${id}
        returning s.*
      ),
      ${
        active
          ? activationSteps(sql, organizationId, accountId, actor, flips)
          : suspensionSteps(sql, organizationId, accountId, actor, flips)
      },
      ${announceSteps(sql, organizationId, actor, 'updated', {
        action: 'scim.user_updated',
        event: 'user.updated',
        details: { changed: ['active'] },
        rows: sql`(select * from usr where ${flips})`,
      })}
      select u.*, ${active ? activationGuard(sql, flips) : sql`true`} as guarded
      from (select 1) one left join usr u on true`,
    );
    const row = rows?.[0];
    if (row === undefined) return byReplacing(sql);
    if (!row.accountId) throw notFound('user', { id });
    return withoutGuard(row);
  });
}

/** Deprovisions a user: the document goes, the membership ends (the account stays). One statement. */
export async function deprovisionUser(
  sql: Sql,
  organizationId: string,
  id: string,
  actor: Actor,
  ifMatch?: readonly number[],
): Promise<void> {
  if (!isUuid(id)) throw notFound('user', { id });
  if (!inOneStatement(actor)) return deprovisionStepByStep(sql, organizationId, id, actor, ifMatch);
  return withOthers(sql, organizationId, async (sql) => {
    const [deleted] = await sql<{ accountId: string }[]>`
    with ${turnStep(sql, organizationId)},
    usr as (
      delete from scim_users where organization_id = ${organizationId} and account_id = ${id}
        and exists (select from turn)
        ${ifMatch ? sql`and version = any(${ifMatch.map(String)}::bigint[])` : sql``}
      returning *
    ),
    ${statusChangeSteps(sql, 'removed', {
      organizationId,
      accountId: id,
      from: ['invited', 'active', 'suspended'],
      to: 'removed',
      action: 'member.removed',
      actor,
      when: sql`exists (select 1 from usr)`,
    })},
    ${announceSteps(sql, organizationId, actor, 'deleted', {
      action: 'scim.user_deleted',
      event: 'user.deprovisioned',
      details: sql`jsonb_build_object('userName', user_name)`,
      rows: sql`usr`,
    })}
    select account_id from usr`;
    if (deleted) return;
    if (ifMatch && (await findDirectoryUser(sql, organizationId, id))) throw preconditionFailed('the user', { id });
    throw notFound('user', { id });
  });
}

/** Refuses a user that is at none of the versions an If-Match names. */
function checkVersion(user: DirectoryUser, ifMatch: readonly number[] | undefined): void {
  if (ifMatch && !ifMatch.includes(user.version)) throw preconditionFailed('the user', { id: user.accountId });
}

/** The stored row as the document it was made from (without id and meta). */
export function documentOf(row: DirectoryUser): Document {
  return {
    ...(row.externalId !== null ? { externalId: row.externalId } : {}),
    userName: row.userName,
    active: row.active,
    ...row.resource,
  };
}

// ---------------------------------------------------------------- one statement

/**
 * Callers limited by their own permissions take the locked path. (So does a join while any
 * organization has the single-organization rule: the statement's guard sees to that.)
 */
function inOneStatement(actor: Actor): boolean {
  return heldPermissions(actor) === null;
}

/**
 * Writes the new fields if the row is still at the version read. Answers the new row, null
 * when the race was lost (read again), or 'longer path' when the statement met a case it does
 * not cover.
 */
async function writeIfUnchanged(
  sql: Sql,
  current: DirectoryUser,
  fields: UserFields,
  actor: Actor,
): Promise<DirectoryUser | null | 'longer path'> {
  const { organizationId, accountId } = current;
  const changed = changedAttributes(current, fields);
  const written = sql`exists (select 1 from usr)`;
  const id = sql`${accountId}::uuid`;
  const activeChange =
    fields.active === current.active
      ? null
      : fields.active
        ? activationSteps(sql, organizationId, id, actor, written)
        : suspensionSteps(sql, organizationId, id, actor, written);
  let rows: (DirectoryUser & { accountId: string | null })[] | undefined;
  try {
    rows = await guarded(
      () => sql<(DirectoryUser & { accountId: string | null })[]>`
      with usr as (
        update scim_users set
          user_name = ${fields.userName}, external_id = ${fields.externalId}, active = ${fields.active},
          display_name = ${fields.displayName}, emails = ${fields.emails}::text[], resource = ${sql.json(fields.resource as never)},
          version = version + 1, updated_at = now()
        where organization_id = ${organizationId} and account_id = ${accountId} and version = ${current.version}
        returning *
      ),
      ${activeChange ? sql`${activeChange},` : sql``}
      ${changeRecordSteps(sql, 'updated', organizationId, actor, {
        action: 'scim.user_updated',
        target: { type: 'account', id: sql`account_id::text` },
        details: sql`${sql.json({ changed })}::jsonb`,
        event: 'user.updated',
        payload: sql`${sql.json({ changed })}::jsonb || jsonb_build_object('accountId', account_id)`,
        rows: changed.length > 0 ? sql`usr` : sql`(select * from usr where false)`,
      })}
      select u.*, ${activeChange && fields.active ? activationGuard(sql, written) : sql`true`} as guarded
      from (select 1) one left join usr u on true`,
    );
  } catch (error) {
    if (isUniqueViolation(error, 'scim_users_user_name')) throw userNameTaken(fields.userName);
    throw error;
  }
  if (rows === undefined) return 'longer path';
  const [row] = rows;
  return row?.accountId ? withoutGuard(row) : null;
}

/**
 * An inactive member becomes active again: a suspended membership is reactivated; a person
 * without one (or removed) joins anew with the default role; an active one stays. The
 * membership's status comes from the reactivation's locked read. A pending invitation is none
 * of these: activationGuard sends that case to the step-by-step path, which accepts it.
 */
function activationSteps(sql: Sql, organizationId: string, accountId: Fragment, actor: Actor, when: Fragment) {
  return sql`
    ${statusChangeSteps(sql, 'reactivated', {
      organizationId,
      accountId,
      from: ['suspended'],
      to: 'active',
      action: 'member.reactivated',
      actor,
      when,
    })},
    ${newMemberSteps(sql, 'joined', {
      organizationId,
      accountId,
      source: 'scim',
      replacing: ['removed'],
      actor,
      when: sql`${when} and not exists (select 1 from reactivated_before where status <> 'removed')`,
    })}`;
}

/** Aborts the statement when activation applied but left the membership not active. */
function activationGuard(sql: Sql, when: Fragment): Fragment {
  return sql`case when ${when} and not (
      exists (select 1 from reactivated_before where status = 'active')
      or exists (select 1 from reactivated) or exists (select 1 from joined)
    ) then orgsync_take_longer_path('the membership needs the full join')
    when (exists (select 1 from reactivated) or exists (select 1 from joined))
      and exists (select 1 from organizations where single_organization)
    then orgsync_take_longer_path('an organization has the single-organization rule')
    else true end`;
}

/** An active member is suspended; any other membership is left as it is. */
function suspensionSteps(sql: Sql, organizationId: string, accountId: Fragment, actor: Actor, when: Fragment) {
  return statusChangeSteps(sql, 'suspended', {
    organizationId,
    accountId,
    from: ['active'],
    to: 'suspended',
    action: 'member.suspended',
    actor,
    when,
  });
}

/** The user's own audit entry and event, for each row of `rows`. */
function announceSteps(
  sql: Sql,
  organizationId: string,
  actor: Actor,
  name: string,
  change: { action: string; event: string; details: Record<string, unknown> | Fragment; rows: Fragment },
): Fragment {
  const details = isFragment(change.details) ? change.details : sql`${sql.json(change.details as never)}::jsonb`;
  return changeRecordSteps(sql, name, organizationId, actor, {
    action: change.action,
    target: { type: 'account', id: sql`account_id::text` },
    details,
    event: change.event,
    payload: sql`${details} || jsonb_build_object('accountId', account_id)`,
    rows: change.rows,
  });
}

const isFragment = (value: unknown): value is Fragment => typeof (value as Fragment).execute === 'function';

/** Runs a single-statement write; undefined when its guard sent it to the longer path. */
async function guarded<T>(statement: () => Promise<T>): Promise<T | undefined> {
  try {
    return await statement();
  } catch (error) {
    if ((error as { code?: string }).code === 'OS001') return undefined;
    throw error;
  }
}

function withoutGuard(row: DirectoryUser & { guarded?: unknown }): DirectoryUser {
  const { guarded: _guarded, ...user } = row;
  return user;
}

// ---------------------------------------------------------------- step by step, under locks

async function lockDirectoryUser(tx: Tx, organizationId: string, id: string): Promise<DirectoryUser> {
  const row = await findDirectoryUser(tx, organizationId, id, tx`for update`);
  if (!row) throw notFound('user', { id });
  return row;
}

async function provisionStepByStep(
  sql: Sql,
  organizationId: string,
  fields: UserFields,
  account: { email: string; givenName: string | null; familyName: string | null },
  actor: Actor,
): Promise<DirectoryUser> {
  return inTransaction(sql, async (tx) => {
    // Statements on one connection run in order: the turn comes before any write, and the insert
    // finds the account the upsert before it wrote, so all three travel in one round trip. No
    // savepoint needed: a clash inserts nothing, and then the existing row says which one.
    const [, person, [row]] = await Promise.all([
      takeBatchProvisioningTurn(tx, organizationId),
      ensureAccount(tx, account),
      tx<DirectoryUser[]>`
        insert into scim_users (organization_id, account_id, user_name, external_id, active, display_name, emails, resource)
        select ${organizationId}, a.id, ${fields.userName}, ${fields.externalId}, ${fields.active},
               ${fields.displayName}, ${fields.emails}::text[], ${tx.json(fields.resource as never)}
        from accounts a where lower(a.email) = lower(${account.email})
        on conflict do nothing
        returning *`,
    ]);
    if (!row) throw await clash(tx, organizationId, fields.userName);
    // The announcement does not depend on the join: sent alongside it (pipelined).
    await Promise.all([
      (async () => {
        await joinOrganization(
          tx,
          { organizationId, accountId: person.id, source: 'scim', liftSuspension: true },
          actor,
        );
        if (!fields.active) await suspendMember(tx, organizationId, person.id, actor);
      })(),
      announce(tx, row, 'scim.user_created', 'user.provisioned', actor, {
        userName: row.userName,
        externalId: row.externalId,
      }),
    ]);
    return row;
  });
}

/** Replaces the document of a user locked by the caller and brings the membership in line with `active`. */
async function replaceStepByStep(
  tx: Tx,
  current: DirectoryUser,
  fields: UserFields,
  actor: Actor,
): Promise<DirectoryUser> {
  const update = (db: Db) => db<DirectoryUser[]>`
    update scim_users set
      user_name = ${fields.userName}, external_id = ${fields.externalId}, active = ${fields.active},
      display_name = ${fields.displayName}, emails = ${fields.emails}::text[], resource = ${db.json(fields.resource as never)},
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
  const [rows] = await Promise.all([update(tx), ...followUps()]);
  return firstRow(rows as DirectoryUser[]);
}

async function deprovisionStepByStep(
  sql: Sql,
  organizationId: string,
  id: string,
  actor: Actor,
  ifMatch: readonly number[] | undefined,
): Promise<void> {
  await inTransaction(sql, async (tx) => {
    const [, row] = await Promise.all([
      takeBatchProvisioningTurn(tx, organizationId),
      lockDirectoryUser(tx, organizationId, id),
    ]);
    checkVersion(row, ifMatch);
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
async function setActive(tx: Tx, user: DirectoryUser, active: boolean, actor: Actor): Promise<void> {
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
  update: (db: Db) => Promise<DirectoryUser[]>,
): Promise<DirectoryUser> {
  try {
    return firstRow(await tx.savepoint((sp) => update(sp)));
  } catch (error) {
    if (isUniqueViolation(error, 'scim_users_user_name')) throw userNameTaken(userName);
    throw error;
  }
}

async function announce(
  tx: Tx,
  user: Pick<DirectoryUser, 'organizationId' | 'accountId'>,
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

// ---------------------------------------------------------------- the document

/** Why an insert clashed: the userName is taken, or the person (by email) is provisioned under another. */
async function clash(db: Db, organizationId: string, userName: string) {
  const [taken] =
    await db`select 1 from scim_users where organization_id = ${organizationId} and lower(user_name) = lower(${userName})`;
  if (taken) return userNameTaken(userName);
  return conflict('this person (by email address) is already provisioned under another userName', { userName });
}

const userNameTaken = (userName: string) =>
  conflict(`a user with userName ${JSON.stringify(userName)} already exists`, { userName });

function userFields(document: Document): UserFields {
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
 * The account the document names: the primary email, else a work email, else the first, else
 * the userName when it is an address (Entra's UPN usually is); with the name parts.
 */
function accountOf(
  document: Document,
  fields: UserFields,
): { email: string; givenName: string | null; familyName: string | null } {
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
  const name = (document.name ?? {}) as { givenName?: string; familyName?: string };
  for (const candidate of candidates) {
    if (candidate?.value && isValidEmail(candidate.value))
      return {
        email: normalizeEmail(candidate.value),
        givenName: name.givenName ?? null,
        familyName: name.familyName ?? null,
      };
  }
  throw invalid('a user needs an email address (in emails, or as the userName)');
}

function changedAttributes(before: DirectoryUser, after: UserFields): string[] {
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
