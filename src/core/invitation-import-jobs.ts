import { inTransaction, type Db, type Tx } from '../storage/database.ts';
import type { Actor } from './actor.ts';
import { serializeBatchProvisioning } from './batch-provisioning-lock.ts';
import { DomainError, notFound } from './errors.ts';
import { isUuid } from './ids.ts';
import { inviteImportRows, readImportFile, type ImportRow, type PreparedRow } from './invitation-import.ts';
import { assertMayInvite } from './invitations.ts';
import { assertRolesExist } from './roles.ts';

/** Rows invited per transaction: small enough to show progress, large enough to keep up. */
export const IMPORT_BATCH = 25;
/** A running job nobody has advanced for this long is taken over (its worker is presumed dead). */
export const IMPORT_STALE_MS = 15_000;

export interface ImportJob {
  id: string;
  status: 'running' | 'done' | 'failed';
  fileName: string | null;
  total: number;
  done: number;
  invited: number;
  skipped: number;
  /** Why the job stopped early (status 'failed'). */
  error: string | null;
  createdAt: Date;
  finishedAt: Date | null;
  /** The rows processed so far, in file order (all of them once done). */
  rows: ImportRow[];
}

interface JobRow {
  id: string;
  status: ImportJob['status'];
  fileName: string | null;
  total: number;
  done: number;
  invited: number;
  error: string | null;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
  results: ImportRow[];
}

const view = ({ updatedAt: _u, results, ...job }: JobRow): ImportJob => ({
  ...job,
  skipped: job.done - job.invited,
  rows: results,
});

/**
 * Checks the file, the roles and the caller's right to invite with them (refused at once, nothing
 * stored), then stores the job for a worker (runInvitationImport) to process.
 */
export async function startInvitationImport(
  db: Db,
  organizationId: string,
  csv: string,
  options: { roles?: string[]; fileName?: string },
  actor: Actor,
): Promise<ImportJob> {
  const rows = await readImportFile(db, organizationId, csv);
  const valid = rows.filter((r) => r.errors.length === 0);
  if (options.roles?.length) await assertRolesExist(db, organizationId, options.roles);
  await assertMayInvite(
    db,
    organizationId,
    valid.map((r) => ({ email: r.email, roles: options.roles, groupIds: r.groupIds })),
    actor,
  );
  const [job] = await db<JobRow[]>`
    insert into invitation_imports (organization_id, status, file_name, roles, actor, pending_rows, total)
    values (${organizationId}, 'running', ${options.fileName ?? null}, ${options.roles?.length ? options.roles : null},
            ${db.json(actor as never)}, ${db.json(rows as never)}, ${rows.length})
    returning id, status, file_name, total, done, invited, error, created_at, updated_at, finished_at, results`;
  return view(job!);
}

/** A job of the organization, with the rows processed so far. */
export async function getInvitationImport(db: Db, organizationId: string, id: string): Promise<ImportJob> {
  const [job] = isUuid(id)
    ? await db<JobRow[]>`
        select id, status, file_name, total, done, invited, error, created_at, updated_at, finished_at, results
        from invitation_imports where organization_id = ${organizationId} and id = ${id}`
    : [];
  if (!job) throw notFound('import', { id });
  return view(job);
}

/** Whether a job is running but nobody has advanced it lately (its worker presumably died). */
export async function isStalledInvitationImport(db: Db, organizationId: string, id: string): Promise<boolean> {
  const rows = await db<{ id: string }[]>`
    select id from invitation_imports
    where organization_id = ${organizationId} and id = ${id} and status = 'running'
      and updated_at < now() - ${`${IMPORT_STALE_MS} milliseconds`}::interval`;
  return rows.length > 0;
}

/**
 * Processes a job to its end, a batch per transaction. The batch holds the job's row lock (FOR
 * UPDATE SKIP LOCKED) and commits its invitations with the progress, so whichever instance holds
 * the lock processes each row exactly once; should it die, the batch rolls back and the next
 * worker (resumeInvitationImport) redoes it. Returns when the job is finished or another worker
 * holds it. A refusal of the whole batch (the uploader lost the right to invite) fails the job.
 */
export async function runInvitationImport(
  db: Db,
  serverSecret: string,
  organizationId: string,
  id: string,
): Promise<void> {
  for (;;) {
    let more: boolean;
    try {
      more = await inTransaction(db, (tx) => processBatch(tx, serverSecret, organizationId, id));
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      await db`
        update invitation_imports set status = 'failed', error = ${error.message}, pending_rows = '[]',
          finished_at = now(), updated_at = now()
        where organization_id = ${organizationId} and id = ${id} and status = 'running'`;
      return;
    }
    if (!more) return;
  }
}

async function processBatch(tx: Tx, serverSecret: string, organizationId: string, id: string): Promise<boolean> {
  const [job] = await tx<{ done: number; total: number; roles: string[] | null; actor: Actor; batch: PreparedRow[] }[]>`
    select done, total, roles, actor,
      coalesce((select jsonb_agg(e order by n) from jsonb_array_elements(pending_rows) with ordinality as t(e, n)
                where n > done and n <= done + ${IMPORT_BATCH}), '[]') as batch
    from invitation_imports
    where organization_id = ${organizationId} and id = ${id} and status = 'running'
    for update skip locked`;
  if (!job) return false;
  // Its invitations take counter rows of many shards in no order, as a /Bulk window and the
  // expiry sweep do: one such transaction of the organization at a time, or they could deadlock.
  await serializeBatchProvisioning(tx, organizationId);
  const rows = await inviteImportRows(
    tx,
    serverSecret,
    organizationId,
    job.batch,
    { roles: job.roles ?? undefined },
    job.actor,
  );
  const done = job.done + rows.length;
  const finished = done >= job.total || rows.length === 0;
  await tx`
    update invitation_imports set
      done = ${done},
      invited = invited + ${rows.filter((r) => r.status === 'invited').length},
      results = results || ${tx.json(rows as never)}::jsonb,
      status = ${finished ? 'done' : 'running'},
      pending_rows = case when ${finished} then '[]'::jsonb else pending_rows end,
      finished_at = case when ${finished} then now() end,
      updated_at = now()
    where organization_id = ${organizationId} and id = ${id}`;
  return !finished;
}

/**
 * How long a finished job (and the addresses in its results) is kept: enough to read its outcome,
 * like the SCIM request log.
 */
export const INVITATION_IMPORT_RETENTION_DAYS = 30;

/** Deletes jobs finished (done or failed) over the retention ago; a running job has no finished_at and stays. */
export async function pruneInvitationImports(db: Db): Promise<number> {
  const rows = await db`
    delete from invitation_imports
    where finished_at < now() - make_interval(days => ${INVITATION_IMPORT_RETENTION_DAYS}) returning 1`;
  return rows.length;
}
