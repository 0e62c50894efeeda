import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import {
  getInvitationImport,
  isStalledInvitationImport,
  runInvitationImport,
  startInvitationImport,
} from '../core/invitation-import-jobs.ts';
import { EXAMPLE_CSV } from '../core/invitation-import.ts';
import { apiRoutes } from './api-routes.ts';
import { csvRoute, route } from './handler.ts';
import { csvFile, dateTime, importRow, uuid } from './schemas.ts';

export const importJobQuery = z.object({
  roles: z.string().max(1300).optional(),
  fileName: z.string().max(255).optional(),
});

const importJob = z.strictObject({
  id: uuid,
  status: z.enum(['running', 'done', 'failed']),
  fileName: z.string().nullable(),
  total: z.number().int(),
  done: z.number().int().describe('rows processed so far'),
  invited: z.number().int(),
  skipped: z.number().int(),
  error: z.string().nullable().describe('why the job stopped early (status failed)'),
  createdAt: dateTime,
  finishedAt: dateTime.nullable(),
  rows: z.array(importRow).describe('the rows processed so far, in file order'),
});

/** The example file, without authentication: a link in the console downloads it whatever the sign-in. */
export function importExampleRouter(): Router {
  const router = Router();
  apiRoutes(router).get(
    '/invitations/imports/example.csv',
    {
      summary: 'An example CSV file to start from (no authentication needed)',
      responses: { 200: csvFile },
      responseTypes: ['text/csv'],
    },
    (_req, res) => {
      res.type('text/csv').attachment('orgsync-import-example.csv').send(EXAMPLE_CSV);
    },
  );
  return router;
}

/**
 * CSV imports as background jobs: the upload answers 202 with the job at once, a worker in this
 * instance invites the rows batch by batch, and the client polls the job for progress and, at
 * the end, the per-row results. A job whose worker died (nobody advanced it for a while) is
 * resumed by the next instance asked about it.
 */
export function importRouter(ctx: AppContext): Router {
  const router = Router();
  const api = apiRoutes(router);
  const working = new Set<string>();
  const work = (organizationId: string, id: string) => {
    if (working.has(id)) return;
    working.add(id);
    runInvitationImport(ctx.sql, ctx.config.serverSecret, organizationId, id)
      .catch((error: unknown) =>
        ctx.log.error({ err: error, importId: id }, 'CSV import stopped; it resumes when polled'),
      )
      .finally(() => working.delete(id));
  };

  // The file is the body (text/csv, read by the admin router); roles for everyone in it come as ?roles=a,b.
  api.post(
    '/invitations/imports',
    {
      summary: 'Start a background import of a CSV file of up to 1,000 rows (202 with the job; poll it)',
      permission: 'members:manage',
      query: importJobQuery,
      body: csvFile,
      bodyType: 'text/csv',
      responses: { 202: importJob },
    },
    csvRoute(async (req, res, p, csv) => {
      const { roles, fileName } = importJobQuery.parse(req.query);
      const job = await startInvitationImport(
        ctx.sql,
        p.organizationId,
        csv,
        {
          roles: roles
            ?.split(',')
            .map((r) => r.trim())
            .filter(Boolean),
          fileName,
        },
        p.actor,
      );
      work(p.organizationId, job.id);
      res.status(202).location(`${req.baseUrl}/invitations/imports/${job.id}`).json(job);
    }),
  );

  api.get(
    '/invitations/imports/:id',
    {
      summary: 'An import job: progress (done of total), then the per-row results',
      permission: 'members:view',
      responses: { 200: importJob },
    },
    route(async (req, res, p) => {
      const job = await getInvitationImport(ctx.sql, p.organizationId, String(req.params.id));
      if (
        job.status === 'running' &&
        !working.has(job.id) &&
        (await isStalledInvitationImport(ctx.sql, p.organizationId, job.id))
      )
        work(p.organizationId, job.id);
      res.json(job);
    }),
  );

  return router;
}
