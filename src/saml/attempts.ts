import { auditEntriesStep, type AuditEntry } from '../core/audit.ts';
import type { Db } from '../storage/database.ts';
import { groupCommit } from '../storage/group-commit.ts';
import { ssoSignIns } from '../metrics.ts';

export interface SsoAttempt {
  id: string;
  at: Date;
  connectionId: string | null;
  idpEntityId: string | null;
  nameId: string | null;
  email: string | null;
  accountId: string | null;
  outcome: 'success' | 'refused';
  reason: string | null;
  message: string | null;
}

export type AttemptInput = Omit<
  SsoAttempt,
  'id' | 'at' | 'connectionId' | 'idpEntityId' | 'nameId' | 'email' | 'accountId' | 'message'
> &
  Partial<Pick<SsoAttempt, 'connectionId' | 'idpEntityId' | 'nameId' | 'email' | 'accountId' | 'message'>>;

/** How long attempts are kept: long enough to debug a connection, short enough to bound the table. */
export const ATTEMPT_RETENTION_DAYS = 90;

/** Appends to the organization's SSO attempt log, and counts the attempt (countAttempt). */
export async function recordAttempt(db: Db, organizationId: string, attempt: AttemptInput): Promise<void> {
  countAttempt(attempt);
  await insertAttempt(db, organizationId, attempt);
}

/** Counts an attempt in the process's metrics. */
export function countAttempt(attempt: Pick<AttemptInput, 'outcome' | 'reason'>): void {
  ssoSignIns.inc({ outcome: attempt.outcome, reason: attempt.reason ?? 'none' });
}

/**
 * Appends to the organization's SSO attempt log, uncounted: a sign-in writes its success in its
 * own transaction and counts it once that is committed; refusals are written on their own.
 */
export async function insertAttempt(db: Db, organizationId: string, attempt: AttemptInput): Promise<void> {
  await db`
    insert into saml_attempts (organization_id, connection_id, idp_entity_id, name_id, email, account_id, outcome, reason, message)
    values (${organizationId}, ${attempt.connectionId ?? null}, ${clip(attempt.idpEntityId)}, ${clip(attempt.nameId)},
            ${clip(attempt.email)}, ${attempt.accountId ?? null}, ${attempt.outcome}, ${attempt.reason ?? null}, ${clip(attempt.message)})`;
}

/** A refused sign-in's bookkeeping: its attempt row and its audit entry, in one organization. */
export interface RefusalRecord {
  organizationId: string;
  attempt: AttemptInput & { outcome: 'refused' };
  audit: AuditEntry;
}

/**
 * The refusal log of one pool: each refusal's attempt row and audit entry are written together,
 * and refusals arriving while a write is in flight go together in the next one (group commit,
 * storage/group-commit.ts): a burst of junk posts costs the event loop a few statements instead
 * of two per post. A refusal's promise settles once its own rows are committed.
 */
export function refusalLog(db: Db): (refusal: RefusalRecord) => Promise<void> {
  const write = groupCommit((batch: RefusalRecord[]) => recordRefusals(db, batch));
  return (refusal) => {
    countAttempt(refusal.attempt);
    return write(refusal);
  };
}

/**
 * Refusals' attempt rows (as recordAttempt writes them) and audit entries, all in one statement,
 * each kind in the order given.
 */
export async function recordRefusals(db: Db, refusals: readonly RefusalRecord[]): Promise<void> {
  const column = <V>(pick: (refusal: RefusalRecord) => V) => refusals.map(pick) as never;
  await db`
    with ${auditEntriesStep(
      db,
      'audit',
      refusals.map((r) => r.audit),
    )}
    insert into saml_attempts (organization_id, connection_id, idp_entity_id, name_id, email, account_id, outcome, reason, message)
    select organization_id, connection_id, idp_entity_id, name_id, email, account_id, outcome, reason, message
    from unnest(${column((r) => r.organizationId)}::uuid[], ${column((r) => r.attempt.connectionId ?? null)}::uuid[],
                ${column((r) => clip(r.attempt.idpEntityId))}::text[], ${column((r) => clip(r.attempt.nameId))}::text[],
                ${column((r) => clip(r.attempt.email))}::text[], ${column((r) => r.attempt.accountId ?? null)}::uuid[],
                ${column((r) => r.attempt.outcome)}::text[], ${column((r) => r.attempt.reason ?? null)}::text[],
                ${column((r) => clip(r.attempt.message))}::text[])
      with ordinality as attempt (organization_id, connection_id, idp_entity_id, name_id, email, account_id, outcome, reason, message, n)
    order by n`;
}

/**
 * Newest first by the numeric id; pass the last id back as `before` for the next page. The id is
 * answered as text (a bigint), so the order names the table's column: a bare `id` would be the
 * text and sort "9" after "25".
 */
export async function listAttempts(
  db: Db,
  organizationId: string,
  page: { before?: string; limit: number; connectionId?: string; outcome?: 'success' | 'refused' },
): Promise<SsoAttempt[]> {
  return db<SsoAttempt[]>`
    select id::text, at, connection_id, idp_entity_id, name_id, email, account_id, outcome, reason, message
    from saml_attempts
    where organization_id = ${organizationId}
      ${page.before ? db`and id < ${page.before}` : db``}
      ${page.connectionId ? db`and connection_id = ${page.connectionId}` : db``}
      ${page.outcome ? db`and outcome = ${page.outcome}` : db``}
    order by saml_attempts.id desc
    limit ${page.limit}`;
}

/** Run by the reconciler's daily housekeeping. */
export async function pruneSsoAttempts(db: Db): Promise<number> {
  const rows =
    await db`delete from saml_attempts where at < now() - make_interval(days => ${ATTEMPT_RETENTION_DAYS}) returning 1`;
  return rows.length;
}

function clip(value: string | null | undefined): string | null {
  return value == null ? null : value.slice(0, 1024);
}
