import type { PendingQuery, Row } from 'postgres';
import type { Db, Fragment, Tx } from '../storage/database.ts';
import { firstRow, inTransaction } from '../storage/database.ts';
import { sharedTransactions } from '../storage/shared-transactions.ts';
import type { Actor } from './actor.ts';
import { assertHoldsPermissionsOf, heldPermissions, rolesMappedToGroups, rolesMappedToNames } from './authority.ts';
import { conflict, DomainError, invalid, isUniqueViolation, notFound, preconditionFailed } from './errors.ts';
import { changeRecordSteps, recordChange } from './events.ts';
import { isUuid } from './ids.ts';
import { MAX_EXTERNAL_ID } from './limits.ts';

/** local: made by admins; scim: pushed by the IdP; saml: a name seen in an assertion's groups attribute. */
export type GroupSource = 'local' | 'scim' | 'saml';

export interface Group {
  organizationId: string;
  id: string;
  source: GroupSource;
  displayName: string;
  externalId: string | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/** Acts only on a group of this source (e.g. the SCIM adapter sees only groups the IdP pushed). */
export interface SourceGuard {
  source: GroupSource;
}

export interface MemberChange {
  added: string[];
  removed: string[];
}

const target = (id: string) => ({ type: 'group', id });

/** The group, or null; `only` hides groups of other sources, `lock` is a locking clause. */
export async function getGroup(
  db: Db,
  organizationId: string,
  id: string,
  only?: SourceGuard,
  lock = db``,
): Promise<Group | null> {
  if (!isUuid(id)) return null;
  const [group] = await db<Group[]>`
    select * from groups where organization_id = ${organizationId} and id = ${id}
      ${only ? db`and source = ${only.source}` : db``}
    ${lock}`;
  return group ?? null;
}

export async function findGroupByName(
  db: Db,
  organizationId: string,
  source: GroupSource,
  displayName: string,
): Promise<Group | null> {
  const [row] = await db<Group[]>`
    select * from groups
    where organization_id = ${organizationId} and source = ${source} and lower(display_name) = lower(${displayName})`;
  return row ?? null;
}

export async function createGroup(
  db: Db,
  input: { organizationId: string; source: GroupSource; displayName: string; externalId?: string | null },
  actor: Actor,
): Promise<Group> {
  const displayName = checkName(input.displayName);
  checkExternalId(input.externalId);
  return inTransaction(db, async (tx) => {
    let group: Group;
    try {
      // A savepoint, so a lost race on the name leaves the caller's transaction usable.
      group = firstRow(
        await tx.savepoint(
          (sp) => sp<Group[]>`
          insert into groups (organization_id, source, display_name, external_id)
          values (${input.organizationId}, ${input.source}, ${displayName}, ${input.externalId ?? null})
          returning *`,
        ),
      );
    } catch (error) {
      if (isUniqueViolation(error))
        throw conflict(`a group named ${JSON.stringify(displayName)} already exists`, { displayName });
      throw error;
    }
    const details = { displayName, source: input.source };
    await recordChange(tx, input.organizationId, actor, {
      action: 'group.created',
      target: target(group.id),
      details,
      event: 'group.created',
      payload: { groupId: group.id, ...details },
    });
    return group;
  });
}

/** Renames or re-keys a group; bumps its version. */
export async function updateGroup(
  db: Db,
  organizationId: string,
  id: string,
  changes: { displayName?: string; externalId?: string | null },
  actor: Actor,
  only?: SourceGuard,
): Promise<Group> {
  const displayName = changes.displayName === undefined ? undefined : checkName(changes.displayName);
  checkExternalId(changes.externalId);
  return inTransaction(db, async (tx) => {
    const before = await lockGroup(tx, organizationId, id, only);
    if (
      displayName !== undefined &&
      displayName.toLowerCase() !== before.displayName.toLowerCase() &&
      heldPermissions(actor)
    ) {
      // A new name leaves the mappings of the old name and meets those of the new one.
      const [member] =
        await tx`select 1 from group_members where organization_id = ${organizationId} and group_id = ${id} limit 1`;
      const roles = member ? await rolesMappedToNames(tx, organizationId, [before.displayName, displayName]) : [];
      await assertHoldsPermissionsOf(tx, organizationId, actor, [
        { roles, reason: 'rename a group whose members this gives or takes, through a mapping, the role(s)' },
      ]);
    }
    let group: Group;
    try {
      group = firstRow(
        await tx.savepoint(
          (sp) => sp<Group[]>`
          update groups set
            display_name = ${displayName ?? before.displayName},
            external_id = ${changes.externalId === undefined ? before.externalId : changes.externalId},
            version = version + 1, updated_at = now()
          where organization_id = ${organizationId} and id = ${id}
          returning *`,
        ),
      );
    } catch (error) {
      if (isUniqueViolation(error))
        throw conflict(`a group named ${JSON.stringify(displayName)} already exists`, { displayName });
      throw error;
    }
    if (group.displayName !== before.displayName || group.externalId !== before.externalId) {
      const details = { from: before.displayName, to: group.displayName, externalId: group.externalId };
      await recordChange(tx, organizationId, actor, {
        action: 'group.updated',
        target: target(id),
        details,
        event: 'group.updated',
        payload: { groupId: id, ...details },
      });
    }
    return group;
  });
}

export async function deleteGroup(
  db: Db,
  organizationId: string,
  id: string,
  actor: Actor,
  only?: SourceGuard,
): Promise<void> {
  await inTransaction(db, async (tx) => {
    const group = await lockGroup(tx, organizationId, id, only);
    // Who lost the group matters to role mapping; collect before the cascade removes them.
    const members = await tx<{ accountId: string }[]>`
      select account_id from group_members where organization_id = ${organizationId} and group_id = ${id}`;
    if (members.length && heldPermissions(actor)) {
      const roles = await rolesMappedToGroups(tx, organizationId, [id]);
      await assertHoldsPermissionsOf(tx, organizationId, actor, [
        { roles, reason: 'delete a group whose members this takes, through a mapping, the role(s)' },
      ]);
    }
    await tx`delete from groups where organization_id = ${organizationId} and id = ${id}`;
    const details = { displayName: group.displayName, source: group.source };
    const payload = { groupId: id, ...details, removed: members.map((m) => m.accountId) };
    await recordChange(tx, organizationId, actor, {
      action: 'group.deleted',
      target: target(id),
      details,
      event: 'group.deleted',
      payload,
    });
  });
}

/**
 * A group's version as SCIM shows it (`g` is the group row): its own version, bumped by its own
 * changes, plus the count of its member changes (migration 080 keeps that count without
 * touching the group row). bigint; compare with `= any(${'${expected}'}::bigint[])`.
 */
export function groupVersion(db: Db): Fragment {
  return db`(g.version + coalesce((select sum(v.changes) from group_member_versions v
    where v.organization_id = g.organization_id and v.group_id = g.id), 0))`;
}

/** The versions an If-Match names, as SQL bigints. */
const versionsParam = (db: Db, expected: readonly number[]) => db`${expected.map(String)}::bigint[]`;

/**
 * Adds and removes members. Costs the same whatever the group's size: only the named rows are
 * read or written. Only accounts with a membership in the organization (not removed) can be
 * added; others are refused as a whole with their ids. Concurrent changes to one group run
 * side by side and lose nothing: each touches only its own member rows.
 */
export async function changeGroupMembers(
  db: Db,
  organizationId: string,
  groupId: string,
  change: { add?: readonly string[]; remove?: readonly string[] },
  actor: Actor,
  only?: SourceGuard,
): Promise<MemberChange> {
  const { added, removed } = await changeVersionedGroupMembers(db, organizationId, groupId, change, actor, { only });
  return { added, removed };
}

/**
 * changeGroupMembers for a caller that speaks versions (SCIM): with `ifMatch`, only when the
 * group is still at one of those versions (else precondition_failed, nothing changed). Answers
 * the group's version after the change when the change was one statement (else the caller
 * reads it).
 */
export async function changeVersionedGroupMembers(
  db: Db,
  organizationId: string,
  groupId: string,
  change: { add?: readonly string[]; remove?: readonly string[] },
  actor: Actor,
  options: { only?: SourceGuard; ifMatch?: readonly number[] },
): Promise<MemberChange & { version?: number }> {
  const { only, ifMatch } = options;
  const add = unique(change.add ?? []);
  // Removing someone who is not a member is a no-op, and an id that is not a UUID names nobody.
  const remove = unique(change.remove ?? []).filter(isUuid);
  // Alone (not inside a caller's transaction, which an aborted statement would end), with the
  // changes of the group's members arriving meanwhile (memberWrites).
  if (!('savepoint' in db) && !heldPermissions(actor) && !add.some((id) => remove.includes(id))) {
    return memberWrites(db, `${organizationId}/${groupId}`, async (shared) => {
      const done = await changeMembersInOneStatement(
        shared,
        organizationId,
        groupId,
        { add, remove },
        actor,
        only,
        ifMatch,
      );
      // In a shared transaction the guard has aborted it: this fails, and each change runs alone.
      return done ?? changeMembersStepByStep(shared, organizationId, groupId, { add, remove }, actor, options);
    });
  }
  return changeMembersStepByStep(db, organizationId, groupId, { add, remove }, actor, options);
}

/**
 * Member changes of one group that arrive while others are being written share the next
 * transaction (an IdP adds people to a group one PATCH at a time, many at once): one commit for
 * them all. Each transaction counts its changes in its own version slot (migration 080), so no
 * lock is needed around them.
 */
const memberWrites = sharedTransactions({ isAnswer: (error) => error instanceof DomainError });

function changeMembersStepByStep(
  db: Db,
  organizationId: string,
  groupId: string,
  { add, remove }: { add: string[]; remove: string[] },
  actor: Actor,
  { only, ifMatch }: { only?: SourceGuard; ifMatch?: readonly number[] },
): Promise<MemberChange & { version?: number }> {
  return inTransaction(db, async (tx) => {
    // No lock on the group without If-Match: member rows are independent (the foreign key keeps
    // a deleted group from gaining members).
    const group = ifMatch
      ? await claimGroupVersion(tx, organizationId, groupId, ifMatch, only)
      : await getGroup(tx, organizationId, groupId, only);
    if (!group) throw notFound('group', { id: groupId });
    if (heldPermissions(actor)) await assertMayChangeMembersOf(tx, group, [...add, ...remove], actor);
    const removed = remove.length
      ? (
          await tx<{ accountId: string }[]>`
          delete from group_members
          where organization_id = ${organizationId} and group_id = ${groupId} and account_id = any(${remove}::uuid[])
          returning account_id`
        ).map((r) => r.accountId)
      : [];
    const added = add.length ? await insertMembers(tx, organizationId, groupId, add) : [];
    return recordMemberChange(tx, organizationId, groupId, { added, removed }, actor);
  });
}

/**
 * The If-Match check, atomic with the write that follows it in the caller's transaction: bumps
 * the group's own version only if the group is still at one of `expected`. Being a write on the
 * group row, it makes a concurrent checked write wait, and that one then re-checks against the
 * bumped row and fails: two writes can never both pass on the same version. Unchecked member
 * changes do not wait for it (they take only a key-share lock on the row).
 */
export async function claimGroupVersion(
  db: Db,
  organizationId: string,
  id: string,
  expected: readonly number[],
  only?: SourceGuard,
): Promise<Group> {
  if (!isUuid(id)) throw notFound('group', { id });
  const [group] = await db<Group[]>`
    update groups g set version = g.version + 1
    where g.organization_id = ${organizationId} and g.id = ${id} ${only ? db`and g.source = ${only.source}` : db``}
      and ${groupVersion(db)} = any(${versionsParam(db, expected)})
    returning g.*`;
  if (group) return group;
  if (await getGroup(db, organizationId, id, only)) throw preconditionFailed('the group', { id });
  throw notFound('group', { id });
}

/**
 * changeGroupMembers as one statement (one round trip), for a caller not limited by its own
 * permissions: the same reads and writes, audit entry and event, and the If-Match check.
 * Undefined when it cannot finish alone (an id that is not a member of the organization): the
 * step-by-step path then runs and refuses the change, naming them.
 */
async function changeMembersInOneStatement(
  db: Db,
  organizationId: string,
  groupId: string,
  change: { add: string[]; remove: string[] },
  actor: Actor,
  only?: SourceGuard,
  ifMatch?: readonly number[],
): Promise<(MemberChange & { version: number }) | undefined> {
  if (!isUuid(groupId)) throw notFound('group', { id: groupId });
  const found = db`exists (select 1 from target_group)`;
  // A side with no ids is left out, not run empty: a plan made while the group was small could
  // otherwise walk all its members to find none (a prepared statement keeps its plan).
  const none = db`select null::uuid as account_id where false`;
  const ofThisGroup = db`g.organization_id = ${organizationId} and g.id = ${groupId}
    ${only ? db`and g.source = ${only.source}` : db``}`;
  try {
    const [result] = await db<(MemberChange & { found: boolean; groupExists: boolean; version: number })[]>`
      with target_group as (
        ${
          ifMatch
            ? db`update groups g set version = g.version + 1
                where ${ofThisGroup} and ${groupVersion(db)} = any(${versionsParam(db, ifMatch)})
                returning g.id, g.version`
            : db`select g.id, g.version from groups g where ${ofThisGroup}`
        }
      ),
      removed as (${
        change.remove.length === 0
          ? none
          : db`delete from group_members
            where organization_id = ${organizationId} and group_id = ${groupId}
              and account_id = any(${change.remove}::uuid[]) and ${found}
            returning account_id`
      }),
      known as (${
        change.add.length === 0
          ? none
          : db`select account_id from memberships
            where organization_id = ${organizationId} and account_id = any(${change.add.filter(isUuid)}::uuid[])
              and status <> 'removed'`
      }),
      added as (
        insert into group_members (organization_id, group_id, account_id)
        select ${organizationId}, ${groupId}, account_id from known where ${found}
        on conflict do nothing
        returning account_id
      ),
      member_change as (
        select coalesce((select array_agg(account_id) from added), '{}') as added,
               coalesce((select array_agg(account_id) from removed), '{}') as removed
      ),
      ${changeRecordSteps(db, 'members', organizationId, actor, {
        action: 'group.members_changed',
        target: { type: 'group', id: db`${groupId}` },
        details: db`jsonb_build_object('added', added, 'removed', removed)`,
        event: 'group.members_changed',
        payload: db`jsonb_build_object('groupId', ${groupId}::text, 'added', added, 'removed', removed)`,
        rows: db`(select * from member_change where cardinality(added) > 0 or cardinality(removed) > 0)`,
      })}
      select ${found} as found, exists (select 1 from groups g where ${ofThisGroup}) as group_exists, c.added, c.removed,
        -- The version after this statement: the trigger's count of these changes is not visible here.
        ((select version from target_group) + cardinality(c.added) + cardinality(c.removed)
          + coalesce((select sum(v.changes) from group_member_versions v
                      where v.organization_id = ${organizationId} and v.group_id = ${groupId}), 0))::float8 as version,
        case when ${found} and (select count(*) from known) < ${change.add.length}
          then orgsync_take_longer_path('not members of this organization') else true end as guarded
      from member_change c`;
    if (!result!.found && result!.groupExists) throw preconditionFailed('the group', { id: groupId });
    if (!result!.found) throw notFound('group', { id: groupId });
    return { added: result!.added, removed: result!.removed, version: result!.version };
  } catch (error) {
    if ((error as { code?: string }).code === 'OS001') return undefined;
    throw error;
  }
}

/**
 * Joining or leaving a mapped group grants or takes away the mapping's roles: a caller limited by
 * its own permissions needs those of the roles, and those of the members it moves.
 */
async function assertMayChangeMembersOf(tx: Tx, group: Group, accountIds: string[], actor: Actor): Promise<void> {
  const roles = await rolesMappedToGroups(tx, group.organizationId, [group.id]);
  if (roles.length === 0) return;
  const [members] = await tx<{ roles: string[] }[]>`
    select coalesce(array_agg(distinct r.role), '{}') as roles
    from memberships m cross join lateral unnest(m.roles || m.mapped_roles) as r(role)
    where m.organization_id = ${group.organizationId} and m.account_id = any(${accountIds.filter(isUuid)}::uuid[])`;
  await assertHoldsPermissionsOf(tx, group.organizationId, actor, [
    { roles, reason: 'grant or take away, through group membership, the role(s)' },
    { roles: members?.roles ?? [], reason: 'change the roles of a member with the role(s)' },
  ]);
}

/** Makes the member set exactly `accountIds` (the IdP's PUT): writes only the difference. */
export async function replaceGroupMembers(
  db: Db,
  organizationId: string,
  groupId: string,
  accountIds: readonly string[],
  actor: Actor,
  only?: SourceGuard,
): Promise<MemberChange> {
  const wanted = unique(accountIds);
  return inTransaction(db, async (tx) => {
    await lockGroup(tx, organizationId, groupId, only);
    const removed = (
      await tx<{ accountId: string }[]>`
        delete from group_members
        where organization_id = ${organizationId} and group_id = ${groupId} and not (account_id = any(${wanted.filter(isUuid)}::uuid[]))
        returning account_id`
    ).map((r) => r.accountId);
    const added = wanted.length ? await insertMembers(tx, organizationId, groupId, wanted) : [];
    return recordMemberChange(tx, organizationId, groupId, { added, removed }, actor);
  });
}

/** The organization's groups (of one source, or all) with their member counts, by name; at most 1000. */
export async function listGroups(
  db: Db,
  organizationId: string,
  source?: GroupSource,
): Promise<(Omit<Group, 'organizationId' | 'version'> & { memberCount: number })[]> {
  return db<(Omit<Group, 'organizationId' | 'version'> & { memberCount: number })[]>`
    select g.id, g.source, g.display_name, g.external_id, g.created_at, g.updated_at,
           (select count(*)::int from group_members gm where gm.organization_id = g.organization_id and gm.group_id = g.id) as member_count
    from groups g where g.organization_id = ${organizationId} ${source ? db`and g.source = ${source}` : db``}
    order by lower(g.display_name), g.id limit 1000`;
}

/** The groups of one source that the person is a member of (e.g. the saml groups of their last sign-in). */
export async function groupsOfMember(
  db: Db,
  organizationId: string,
  accountId: string,
  source: GroupSource,
): Promise<Pick<Group, 'id' | 'displayName'>[]> {
  return db<Pick<Group, 'id' | 'displayName'>[]>`
    select g.id, g.display_name from groups g
    join group_members gm on gm.organization_id = g.organization_id and gm.group_id = g.id
    where g.organization_id = ${organizationId} and g.source = ${source} and gm.account_id = ${accountId}`;
}

/**
 * A SQL condition on a group row aliased `g` (as the SCIM list query names it): some member row
 * of the group, aliased `gm`, satisfies `condition` (a SCIM filter on `members.value`).
 */
export function someMemberMatches(db: Db, organizationId: string, condition: PendingQuery<Row[]>): PendingQuery<Row[]> {
  return db`exists (select 1 from group_members gm
    where gm.organization_id = ${organizationId} and gm.group_id = g.id and ${condition})`;
}

/** A page of member account ids in a stable order; pass the last id back as `after`. */
export async function listGroupMemberIds(
  db: Db,
  organizationId: string,
  groupId: string,
  page: { after?: string; limit: number },
): Promise<string[]> {
  const rows = await db<{ accountId: string }[]>`
    select account_id from group_members
    where organization_id = ${organizationId} and group_id = ${groupId}
      ${page.after ? db`and account_id > ${page.after}` : db``}
    order by account_id limit ${page.limit}`;
  return rows.map((r) => r.accountId);
}

/**
 * Inserts the members in one statement that also reports which ids are not members of the
 * organization (an id that is not a UUID is none); those refuse the whole change, named (the
 * caller's transaction rolls back).
 */
async function insertMembers(tx: Tx, organizationId: string, groupId: string, accountIds: string[]): Promise<string[]> {
  const [result] = await tx<{ known: string[]; added: string[] }[]>`
    with known as (
      select account_id from memberships
      where organization_id = ${organizationId} and account_id = any(${accountIds.filter(isUuid)}::uuid[]) and status <> 'removed'
    ), added as (
      insert into group_members (organization_id, group_id, account_id)
      select ${organizationId}, ${groupId}, account_id from known
      on conflict do nothing
      returning account_id
    )
    select coalesce((select array_agg(account_id) from known), '{}') as known,
           coalesce((select array_agg(account_id) from added), '{}') as added`;
  const known = new Set(result!.known);
  const strangers = accountIds.filter((id) => !known.has(id));
  if (strangers.length)
    throw invalid(`not members of this organization: ${strangers.join(', ')}`, { accountIds: strangers });
  return result!.added;
}

/**
 * Audits and announces a member change. The group row itself is not touched: bumping its version
 * on every member change made one row every concurrent change queued for until commit (a
 * quarter of the throughput of adds to one group). The member change counts toward the group's
 * SCIM version through migration 080's trigger instead (see groupVersion).
 */
async function recordMemberChange(
  tx: Tx,
  organizationId: string,
  groupId: string,
  change: MemberChange,
  actor: Actor,
): Promise<MemberChange> {
  if (change.added.length === 0 && change.removed.length === 0) return change;
  await recordChange(tx, organizationId, actor, {
    action: 'group.members_changed',
    target: target(groupId),
    details: { ...change },
    event: 'group.members_changed',
    payload: { groupId, ...change },
  });
  return change;
}

/**
 * Locks the group row, so renames, replacements and deletion of one group serialise. The lock
 * (NO KEY UPDATE) still lets member rows be added meanwhile. `only` hides groups of other sources.
 */
async function lockGroup(tx: Tx, organizationId: string, id: string, only?: SourceGuard): Promise<Group> {
  const group = await getGroup(tx, organizationId, id, only, tx`for no key update`);
  if (!group) throw notFound('group', { id });
  return group;
}

function checkName(name: string): string {
  const trimmed = name.trim();
  if (trimmed.length < 1 || trimmed.length > 256) throw invalid('a group name must be 1 to 256 characters');
  return trimmed;
}

function checkExternalId(externalId: string | null | undefined): void {
  if (externalId && externalId.length > MAX_EXTERNAL_ID)
    throw invalid(`a group's externalId must be at most ${MAX_EXTERNAL_ID} characters`);
}

/** Distinct ids; UUIDs in PostgreSQL's lower-case form, so they compare with what it returns. */
function unique(ids: readonly string[]): string[] {
  return [...new Set(ids.map((id) => (isUuid(id) ? id.toLowerCase() : id)))];
}
