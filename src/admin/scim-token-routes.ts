import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { issueCredential, listCredentials, revokeCredential, rotateCredential } from '../core/credentials.ts';
import { notFound } from '../core/errors.ts';
import { listScimRequests } from '../scim/request-log.ts';
import { apiRoutes } from './api-routes.ts';
import { route, rowId } from './handler.ts';
import { credential, dateTime, page, rowIdText } from './schemas.ts';

const tokenInput = z
  .object({ name: z.string().min(1).max(100), expiresInDays: z.number().int().min(1).max(3650).optional() })
  .strict();
const rotateInput = z.object({ overlapHours: z.number().min(0).max(720).default(24) }).strict();
const requestsQuery = z.object({
  before: rowId('a request').optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

const scimBaseUrlField = z.url().describe('the SCIM base URL to give the IdP');
const issuedToken = z.strictObject({
  scimBaseUrl: scimBaseUrlField,
  token: credential,
  secret: z.string().describe('shown once'),
});
const scimRequest = z.strictObject({
  id: rowIdText,
  at: dateTime,
  method: z.string(),
  path: z.string(),
  status: z.number().int(),
  durationMs: z.number(),
  resourceType: z.string().nullable(),
  resourceId: z.string().nullable(),
  errorDetail: z.string().nullable().describe("a refused request's SCIM error detail"),
});

/** SCIM tokens of the caller's organization: issue (shown once), rotate with overlap, revoke, and what each did. */
export function scimTokenRouter(ctx: AppContext): Router {
  const router = Router();
  const api = apiRoutes(router);
  const scimBaseUrl = `${ctx.config.publicUrl}/scim/v2`;

  api.get(
    '/scim-tokens',
    {
      summary: 'SCIM base URL and tokens (never their secrets)',
      permission: 'org:manage',
      responses: { 200: z.strictObject({ scimBaseUrl: scimBaseUrlField, tokens: z.array(credential) }) },
    },
    route(async (_req, res, p) => {
      res.json({ scimBaseUrl, tokens: await listCredentials(ctx.sql, p.organizationId, 'scim') });
    }),
  );
  api.post(
    '/scim-tokens',
    {
      summary: 'Issue a SCIM token (the secret is shown once)',
      permission: 'org:manage',
      body: tokenInput,
      responses: { 201: issuedToken },
    },
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
  api.post(
    '/scim-tokens/:id/rotate',
    {
      summary: 'New secret; the old one keeps working for the overlap',
      permission: 'org:manage',
      body: rotateInput,
      responses: { 201: issuedToken.extend({ previous: credential }) },
    },
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
  api.delete(
    '/scim-tokens/:id',
    {
      summary: 'Revoke a SCIM token now',
      permission: 'org:manage',
      responses: { 200: z.strictObject({ token: credential }) },
    },
    route(async (req, res, p) => {
      res.json({ token: await revokeCredential(ctx.sql, p.organizationId, String(req.params.id), p.actor, 'scim') });
    }),
  );
  api.get(
    '/scim-tokens/:id/requests',
    {
      summary: 'What the IdP did with this token, newest first (pass `next` as `before`)',
      permission: 'org:manage',
      query: requestsQuery,
      responses: { 200: page(scimRequest, rowIdText) },
    },
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
