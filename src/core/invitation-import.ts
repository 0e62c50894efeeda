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

/**
 * Invites the people of a CSV file with the columns `email` and `group membership` (local group
 * names, comma-separated in the cell, matched case-insensitively; other columns are ignored).
 * Valid rows are invited one by one, invalid ones skipped with their reasons. Sending the same
 * file again invites nobody twice: those rows come back "already invited".
 */
export async function importInvitations(
  db: Db,
  serverSecret: string,
  organizationId: string,
  csv: string,
  options: { roles?: string[] },
  actor: Actor,
): Promise<{ total: number; invited: number; skipped: number; rows: ImportRow[] }> {
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
  const rows: (ImportRow & { groupIds: string[] })[] = records.map((record, i) => {
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
    return { row: i + 2, email, status: errors.length ? 'skipped' : 'invited', errors, groupIds };
  });

  const valid = rows.filter((r) => r.errors.length === 0);
  const results = await inviteMembers(
    db,
    serverSecret,
    organizationId,
    valid.map((r) => ({ email: r.email, roles: options.roles, groupIds: r.groupIds })),
    actor,
  );
  results.forEach((result, i) => {
    if (result.invited) return;
    const row = valid[i]!;
    row.status = 'skipped';
    row.errors.push(
      /already a member/.test(result.message)
        ? 'already a member'
        : /pending invitation/.test(result.message)
          ? 'already invited'
          : result.message,
    );
  });
  const out = rows.map(({ groupIds: _g, ...r }) => r);
  const invited = out.filter((r) => r.status === 'invited').length;
  return { total: out.length, invited, skipped: out.length - invited, rows: out };
}
