import { once } from 'node:events';
import { Router, type Response } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { auditEntries, auditMatchesMoreThan, listAudit, type AuditEntry } from '../core/audit-query.ts';
import { apiRoutes } from './api-routes.ts';
import { route, rowId, storableDate } from './handler.ts';
import { dateTime, page, rowIdText } from './schemas.ts';

const auditFilter = z.object({
  actor: z.string().max(320).optional(),
  target: z.string().max(320).optional(),
  action: z.string().max(100).optional(),
  since: storableDate.optional(),
  until: storableDate.optional(),
});
const auditQuery = auditFilter.extend({
  before: rowId('an audit entry').optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});
const exportQuery = auditFilter.extend({ format: z.enum(['csv', 'jsonl']).default('csv') });

/** The most entries one export answers; a larger range is refused (narrow it with since/until). */
export const AUDIT_EXPORT_MAX = 100_000;

const CSV_COLUMNS = [
  'id',
  'at',
  'channel',
  'actorType',
  'actorId',
  'actorName',
  'action',
  'targetType',
  'targetId',
  'targetName',
  'details',
] as const;

const auditEntry = z.strictObject({
  id: rowIdText,
  at: dateTime,
  channel: z.string(),
  actorType: z.string(),
  actorId: z.string().nullable(),
  actorName: z.string(),
  action: z.string(),
  targetType: z.string().nullable(),
  targetId: z.string().nullable(),
  targetName: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
});

/** The organization's audit log, newest first, filtered and paged; or exported as CSV or JSON Lines. */
export function auditRouter(ctx: AppContext): Router {
  const router = Router();
  const api = apiRoutes(router);
  api.get(
    '/audit',
    {
      summary: 'The audit log, newest first (pass `next` as `before`)',
      permission: 'members:manage',
      query: auditQuery,
      responses: { 200: page(auditEntry, rowIdText) },
    },
    route(async (req, res, p) => {
      res.json(await listAudit(ctx.sql, p.organizationId, auditQuery.parse(req.query)));
    }),
  );
  api.get(
    '/audit/export',
    {
      summary: 'The filtered audit log as CSV or JSON Lines (format=csv|jsonl), newest first, at most 100,000 entries',
      permission: 'members:manage',
      query: exportQuery,
      responses: {
        200: z.string().describe('A CSV file (format=csv) or one JSON audit entry per line (format=jsonl)'),
      },
      responseTypes: ['text/csv', 'application/jsonl'],
    },
    route(async (req, res, p) => {
      const { format, ...filter } = exportQuery.parse(req.query);
      if (await auditMatchesMoreThan(ctx.sql, p.organizationId, filter, AUDIT_EXPORT_MAX)) {
        res.status(400).json({
          error: 'invalid',
          message: `more than ${AUDIT_EXPORT_MAX} entries match: narrow the range (since, until) or the filters`,
          details: { max: AUDIT_EXPORT_MAX },
        });
        return;
      }
      const stamp = new Date().toISOString().slice(0, 19).replace(/:/g, '-');
      res.set({
        'content-type': format === 'csv' ? 'text/csv; charset=utf-8' : 'application/jsonl; charset=utf-8',
        'content-disposition': `attachment; filename="audit-${stamp}.${format}"`,
        'cache-control': 'no-store',
      });
      if (format === 'csv') await write(res, CSV_COLUMNS.join(',') + '\r\n');
      // A page at a time, waiting whenever the client reads slower than the database answers.
      for await (const page of auditEntries(ctx.sql, p.organizationId, filter)) {
        await write(res, page.map(format === 'csv' ? csvLine : (e) => JSON.stringify(e) + '\n').join(''));
      }
      res.end();
    }),
  );
  return router;
}

async function write(res: Response, chunk: string): Promise<void> {
  if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
  if (res.destroyed) throw new Error('the client went away during the export');
}

function csvLine(entry: AuditEntry): string {
  return (
    CSV_COLUMNS.map((column) => {
      const value = entry[column];
      return csvCell(
        value instanceof Date ? value.toISOString() : typeof value === 'object' ? JSON.stringify(value) : value,
      );
    }).join(',') + '\r\n'
  );
}

/** Quoted when needed; a leading = + - @ is defused so a spreadsheet does not run it as a formula. */
function csvCell(value: string | null | undefined): string {
  if (value === null || value === undefined) return '';
  const text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
