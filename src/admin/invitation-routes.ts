import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { importInvitations } from '../core/invitation-import.ts';
import { inviteMembers, listInvitations, resendInvitation, revokeInvitation } from '../core/invitations.ts';
import { apiRoutes } from './api-routes.ts';
import { csvRoute, route } from './handler.ts';
import { csvFile, importRow, invitation } from './schemas.ts';

export const MAX_INVITES_PER_REQUEST = 20;

const inviteInput = z
  .object({
    // A list, or one string of addresses separated by spaces, commas or new lines.
    emails: z.union([z.string(), z.array(z.string())]),
    givenName: z.string().max(200).optional(),
    familyName: z.string().max(200).optional(),
    roles: z.array(z.string().min(1).max(63)).max(20).optional(),
    groupIds: z.array(z.string()).max(50).optional(),
  })
  .strict();
const importQuery = z.object({ roles: z.string().optional() });
const listQuery = z.object({ status: z.enum(['pending', 'accepted', 'expired', 'revoked']).optional() });

const inviteResults = z.strictObject({
  invited: z.number().int(),
  failed: z.number().int(),
  results: z.array(
    z.union([
      z.strictObject({ email: z.string(), invited: z.literal(true), invitation }),
      z.strictObject({ email: z.string(), invited: z.literal(false), error: z.string(), message: z.string() }),
    ]),
  ),
});
const importResult = z.strictObject({
  total: z.number().int(),
  invited: z.number().int(),
  skipped: z.number().int(),
  rows: z.array(importRow),
});

export function splitAddresses(emails: string | string[]): string[] {
  const all = (Array.isArray(emails) ? emails : [emails]).flatMap((e) => e.split(/[\s,;]+/));
  return [...new Set(all.map((e) => e.trim()).filter(Boolean))];
}

/** Invitations: invite up to 20 people at once, list, resend, revoke. */
export function invitationRouter(ctx: AppContext): Router {
  const router = Router();
  const api = apiRoutes(router);

  api.post(
    '/invitations',
    {
      summary: 'Invite up to 20 addresses, a result each (400 when none could be invited)',
      permission: 'members:manage',
      body: inviteInput,
      responses: { 201: inviteResults },
    },
    route(async (req, res, p) => {
      const input = inviteInput.parse(req.body);
      const emails = splitAddresses(input.emails);
      if (emails.length === 0) {
        res.status(400).json({ error: 'invalid', message: 'emails: give at least one address' });
        return;
      }
      if (emails.length > MAX_INVITES_PER_REQUEST) {
        res.status(400).json({
          error: 'invalid',
          message: `at most ${MAX_INVITES_PER_REQUEST} addresses per request (got ${emails.length}); use the CSV import for more`,
        });
        return;
      }
      const names = emails.length === 1 ? { givenName: input.givenName, familyName: input.familyName } : {};
      const results = await inviteMembers(
        ctx.sql,
        ctx.config.serverSecret,
        p.organizationId,
        emails.map((email) => ({ email, roles: input.roles, groupIds: input.groupIds, ...names })),
        p.actor,
      );
      const invited = results.filter((r) => r.invited).length;
      res.status(invited > 0 ? 201 : 400).json({ invited, failed: results.length - invited, results });
    }),
  );

  // The file is the body (text/csv, read by the admin router); roles for everyone in it come as ?roles=a,b.
  api.post(
    '/invitations/import',
    {
      summary:
        'Invite from a CSV file of up to 1,000 rows in one request, a result per row (kept for older scripts; prefer /invitations/imports)',
      permission: 'members:manage',
      query: importQuery,
      body: csvFile,
      bodyType: 'text/csv',
      responses: { 200: importResult },
    },
    csvRoute(async (req, res, p, csv) => {
      const roles = importQuery
        .parse(req.query)
        .roles?.split(',')
        .map((r) => r.trim())
        .filter(Boolean);
      res.json(await importInvitations(ctx.sql, ctx.config.serverSecret, p.organizationId, csv, { roles }, p.actor));
    }),
  );

  api.get(
    '/invitations',
    {
      summary: 'List invitations, newest first',
      permission: 'members:view',
      query: listQuery,
      responses: { 200: z.strictObject({ items: z.array(invitation) }) },
    },
    route(async (req, res, p) => {
      res.json({ items: await listInvitations(ctx.sql, p.organizationId, listQuery.parse(req.query).status) });
    }),
  );

  api.post(
    '/invitations/:id/resend',
    { summary: 'New token and expiry', permission: 'members:manage', responses: { 200: invitation } },
    route(async (req, res, p) => {
      res.json(
        await resendInvitation(ctx.sql, ctx.config.serverSecret, p.organizationId, String(req.params.id), p.actor),
      );
    }),
  );

  api.delete(
    '/invitations/:id',
    { summary: 'Withdraw a pending invitation', permission: 'members:manage', responses: { 204: null } },
    route(async (req, res, p) => {
      await revokeInvitation(ctx.sql, p.organizationId, String(req.params.id), p.actor);
      res.status(204).end();
    }),
  );

  return router;
}
