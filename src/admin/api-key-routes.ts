import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { issueCredential, listCredentials, revokeCredential, type Credential } from '../core/credentials.ts';
import { apiRoutes } from './api-routes.ts';
import { route } from './handler.ts';
import { credential } from './schemas.ts';

const keyInput = z
  .object({
    name: z.string().trim().min(1, 'must not be empty').max(100, 'must be at most 100 characters'),
    roles: z.array(z.string().min(1).max(63)).min(1, 'choose at least one role').max(20),
    expiresInDays: z.number().int().min(1).max(3650).optional(),
  })
  .strict();

const apiKey = credential.omit({ organizationId: true, kind: true, createdByType: true, createdByName: true }).extend({
  createdBy: z
    .strictObject({ type: credential.shape.createdByType.unwrap(), name: z.string() })
    .nullable()
    .describe('who issued it; null for keys older than that record'),
  current: z.boolean().describe('the key making this call'),
});

/**
 * Admin API keys of the caller's organization: issue (the secret is answered once), list, revoke.
 * A key is issued only with roles whose permissions the caller holds (core/credentials.ts).
 */
export function apiKeyRouter(ctx: AppContext): Router {
  const router = Router();
  const api = apiRoutes(router);

  api.get(
    '/api-keys',
    {
      summary: 'Admin API keys (never their secrets), with who created them and their last use',
      permission: 'org:manage',
      responses: { 200: z.strictObject({ items: z.array(apiKey) }) },
    },
    route(async (_req, res, p) => {
      const keys = await listCredentials(ctx.sql, p.organizationId, 'admin');
      res.json({ items: keys.map((key) => keyView(key, p.actor.id)) });
    }),
  );
  api.post(
    '/api-keys',
    {
      summary: 'Issue an admin API key with roles the caller holds (the secret is shown once)',
      permission: 'org:manage',
      body: keyInput,
      responses: { 201: z.strictObject({ key: apiKey, secret: z.string().describe('shown once') }) },
    },
    route(async (req, res, p) => {
      const input = keyInput.parse(req.body);
      const expiresAt = input.expiresInDays ? new Date(Date.now() + input.expiresInDays * 86_400_000) : null;
      const { secret, ...key } = await issueCredential(
        ctx.sql,
        ctx.config.serverSecret,
        { organizationId: p.organizationId, kind: 'admin', name: input.name, roles: input.roles, expiresAt },
        p.actor,
      );
      res.status(201).json({ key: keyView(key, p.actor.id), secret });
    }),
  );
  api.delete(
    '/api-keys/:id',
    {
      summary: 'Revoke an admin API key now',
      permission: 'org:manage',
      responses: { 200: z.strictObject({ key: apiKey }) },
    },
    route(async (req, res, p) => {
      const key = await revokeCredential(ctx.sql, p.organizationId, String(req.params.id), p.actor, 'admin');
      res.json({ key: keyView(key, p.actor.id) });
    }),
  );
  return router;
}

/** A key as listed: never its secret; `current` marks the key making this call. */
function keyView(key: Credential, callerId: string | undefined) {
  const { createdByType, createdByName, organizationId: _organizationId, kind: _kind, ...rest } = key;
  return {
    ...rest,
    createdBy: createdByName ? { type: createdByType, name: createdByName } : null,
    current: key.id === callerId,
  };
}
