import { parse } from 'csv-parse/sync';
import type { Db } from '../storage/database.ts';
import { isValidEmail } from './accounts.ts';
import type { Actor } from './actor.ts';
import { invalid } from './errors.ts';
import { inviteMembers } from './invitations.ts';

export const MAX_IMPORT_ROWS = 1000;

export interface ImportRow {
  /** Line in the file; the header is line 1. */
  row: number;
  email: string;
  status: 'invited' | 'skipped';
  errors: string[];
}

/** A row of the file, checked: what is wrong with it (if anything) and the group ids it names. */
export interface PreparedRow {
  row: number;
  email: string;
  groupIds: string[];
  errors: string[];
}

/** A file to start from: the header, and a row with no group and one with two. */
export const EXAMPLE_CSV = 'email,group membership\r\nada@example.com,\r\ngrace@example.com,"Engineering, Sales"\r\n';

/**
 * Reads a CSV file with the columns `email` and `group membership` (local group names,
 * comma-separated in the cell, matched case-insensitively; other columns are ignored) and checks
 * each row. A file that cannot be read at all (not CSV, no email column, no rows, too many) is
 * refused whole; a bad row is only marked with its reasons.
 */
export async function readImportFile(db: Db, organizationId: string, csv: string): Promise<PreparedRow[]> {
  let records: Record<string, string>[];
  try {
    records = parse(csv, {
      columns: (header: string[]) => header.map((h) => h.trim().toLowerCase()),
      skip_empty_lines: true,
      trim: true,
      bom: true,
      relax_column_count: true,
    });
  } catch (error) {
    throw invalid(`the file is not valid CSV: ${(error as Error).message}`);
  }
  if (records.length > 0 && !('email' in records[0]!)) throw invalid('the file needs an "email" column');
  if (records.length === 0) throw invalid('the file has no rows');
  if (records.length > MAX_IMPORT_ROWS)
    throw invalid(`at most ${MAX_IMPORT_ROWS} rows per file (got ${records.length})`);

  const groups = await db<{ id: string; name: string }[]>`
    select id, lower(display_name) as name from groups where organization_id = ${organizationId} and source = 'local'`;
  const groupByName = new Map(groups.map((g) => [g.name, g.id]));
  const seen = new Set<string>();
  return records.map((record, i) => {
    const email = record.email ?? '';
    const errors: string[] = [];
    if (!isValidEmail(email)) errors.push('invalid email format');
    else if (seen.has(email.toLowerCase())) errors.push('duplicate in file');
    seen.add(email.toLowerCase());
    const names = (record['group membership'] ?? '')
      .split(',')
      .map((g) => g.trim())
      .filter(Boolean);
    const unknown = names.filter((n) => !groupByName.has(n.toLowerCase()));
    if (unknown.length) errors.push(`unknown group(s): ${unknown.join(', ')}`);
    const groupIds = names.map((n) => groupByName.get(n.toLowerCase())).filter((id): id is string => Boolean(id));
    return { row: i + 2, email, groupIds, errors };
  });
}

/**
 * Invites the valid rows one by one and reports every row. Inviting the same person again
 * invites nobody twice: such rows come back "already invited" (or "already a member").
 */
export async function inviteImportRows(
  db: Db,
  serverSecret: string,
  organizationId: string,
  rows: PreparedRow[],
  options: { roles?: string[] },
  actor: Actor,
): Promise<ImportRow[]> {
  const out: ImportRow[] = rows.map((r) => ({
    row: r.row,
    email: r.email,
    status: r.errors.length ? 'skipped' : 'invited',
    errors: [...r.errors],
  }));
  const valid = rows.map((r, i) => ({ r, i })).filter(({ r }) => r.errors.length === 0);
  const results = await inviteMembers(
    db,
    serverSecret,
    organizationId,
    valid.map(({ r }) => ({ email: r.email, roles: options.roles, groupIds: r.groupIds })),
    actor,
  );
  results.forEach((result, n) => {
    if (result.invited) return;
    const row = out[valid[n]!.i]!;
    row.status = 'skipped';
    row.errors.push(
      /already a member/.test(result.message)
        ? 'already a member'
        : /pending invitation/.test(result.message)
          ? 'already invited'
          : result.message,
    );
  });
  return out;
}

/**
 * The whole import in one call (POST /api/invitations/import, kept for scripts written against
 * it; the console and new clients use the background job of invitation-import-jobs.ts).
 */
export async function importInvitations(
  db: Db,
  serverSecret: string,
  organizationId: string,
  csv: string,
  options: { roles?: string[] },
  actor: Actor,
): Promise<{ total: number; invited: number; skipped: number; rows: ImportRow[] }> {
  const prepared = await readImportFile(db, organizationId, csv);
  const rows = await inviteImportRows(db, serverSecret, organizationId, prepared, options, actor);
  const invited = rows.filter((r) => r.status === 'invited').length;
  return { total: rows.length, invited, skipped: rows.length - invited, rows };
}
