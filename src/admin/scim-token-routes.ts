import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { issueCredential, listCredentials, revokeCredential, rotateCredential } from '../core/credentials.ts';
import { notFound } from '../core/errors.ts';
import { listScimRequests } from '../scim/request-log.ts';
import { requirePermission } from './auth.ts';
import { route, rowId } from './handler.ts';

const tokenInput = z
  .object({ name: z.string().min(1).max(100), expiresInDays: z.number().int().min(1).max(3650).optional() })
  .strict();
const rotateInput = z.object({ overlapHours: z.number().min(0).max(720).default(24) }).strict();
const requestsQuery = z.object({
  before: rowId('a request').optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

/** SCIM tokens of the caller's organization: issue (shown once), rotate with overlap, revoke, and what each did. */
export function scimTokenRouter(ctx: AppContext): Router {
  const router = Router();
  const scimBaseUrl = `${ctx.config.publicUrl}/scim/v2`;
  router.use('/scim-tokens', requirePermission('org:manage'));

  router.get(
    '/scim-tokens',
    route(async (_req, res, p) => {
      res.json({ scimBaseUrl, tokens: await listCredentials(ctx.sql, p.organizationId, 'scim') });
    }),
  );
  router.post(
    '/scim-tokens',
    route(async (req, res, p) => {
      const input = tokenInput.parse(req.body);
      const expiresAt = input.expiresInDays ? new Date(Date.now() + input.expiresInDays * 86_400_000) : null;
      const { secret, ...token } = await issueCredential(
        ctx.sql,
        ctx.config.serverSecret,
        { organizationId: p.organizationId, kind: 'scim', name: input.name, expiresAt },
        p.actor,
      );
      res.status(201).json({ scimBaseUrl, token, secret });
    }),
  );
  router.post(
    '/scim-tokens/:id/rotate',
    route(async (req, res, p) => {
      const { overlapHours } = rotateInput.parse(req.body ?? {});
      await scimToken(p.organizationId, String(req.params.id));
      const { issued, previous } = await rotateCredential(
        ctx.sql,
        ctx.config.serverSecret,
        p.organizationId,
        String(req.params.id),
        overlapHours,
        p.actor,
      );
      const { secret, ...token } = issued;
      res.status(201).json({ scimBaseUrl, token, secret, previous });
    }),
  );
  router.delete(
    '/scim-tokens/:id',
    route(async (req, res, p) => {
      res.json({ token: await revokeCredential(ctx.sql, p.organizationId, String(req.params.id), p.actor, 'scim') });
    }),
  );
  router.get(
    '/scim-tokens/:id/requests',
    route(async (req, res, p) => {
      const token = await scimToken(p.organizationId, String(req.params.id));
      const query = requestsQuery.parse(req.query);
      const items = await listScimRequests(ctx.sql, p.organizationId, token.id, query);
      res.json({ items, next: items.length === query.limit ? items[items.length - 1]!.id : null });
    }),
  );

  async function scimToken(organizationId: string, id: string) {
    const token = (await listCredentials(ctx.sql, organizationId, 'scim')).find((t) => t.id === id);
    if (!token) throw notFound('SCIM token', { id });
    return token;
  }
  return router;
}
