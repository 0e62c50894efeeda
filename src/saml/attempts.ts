import type { Db } from '../storage/database.ts';
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

/** Appends to the organization's SSO attempt log (kept outside the sign-in transaction: refusals are logged too). */
export async function recordAttempt(db: Db, organizationId: string, attempt: AttemptInput): Promise<void> {
  ssoSignIns.inc({ outcome: attempt.outcome, reason: attempt.reason ?? 'none' });
  await db`
    insert into saml_attempts (organization_id, connection_id, idp_entity_id, name_id, email, account_id, outcome, reason, message)
    values (${organizationId}, ${attempt.connectionId ?? null}, ${clip(attempt.idpEntityId)}, ${clip(attempt.nameId)},
            ${clip(attempt.email)}, ${attempt.accountId ?? null}, ${attempt.outcome}, ${attempt.reason ?? null}, ${clip(attempt.message)})`;
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
