import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { listAudit } from '../core/audit-query.ts';
import { requirePermission } from './auth.ts';
import { route, rowId, storableDate } from './handler.ts';

const auditQuery = z.object({
  actor: z.string().max(320).optional(),
  target: z.string().max(100).optional(),
  action: z.string().max(100).optional(),
  since: storableDate.optional(),
  until: storableDate.optional(),
  before: rowId('an audit entry').optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

/** The organization's audit log, newest first, filtered and paged. */
export function auditRouter(ctx: AppContext): Router {
  const router = Router();
  router.get(
    '/audit',
    requirePermission('members:manage'),
    route(async (req, res, p) => {
      res.json(await listAudit(ctx.sql, p.organizationId, auditQuery.parse(req.query)));
    }),
  );
  return router;
}
