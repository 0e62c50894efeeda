import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { listAudit } from '../core/audit-query.ts';
import { apiRoutes } from './api-routes.ts';
import { route, rowId, storableDate } from './handler.ts';
import { dateTime, page, rowIdText } from './schemas.ts';

const auditQuery = z.object({
  actor: z.string().max(320).optional(),
  target: z.string().max(100).optional(),
  action: z.string().max(100).optional(),
  since: storableDate.optional(),
  until: storableDate.optional(),
  before: rowId('an audit entry').optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

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
  details: z.record(z.string(), z.unknown()),
});

/** The organization's audit log, newest first, filtered and paged. */
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
  return router;
}
