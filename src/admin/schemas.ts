import { z } from 'zod';
import { PERMISSIONS } from '../core/permissions.ts';

/**
 * Response schemas shared by several admin routes. They describe the JSON as sent (dates as ISO
 * strings) and are strict: a field a route adds without declaring it fails the answers test.
 */
export const dateTime = z.iso.datetime();
export const uuid = z.uuid();
/** A bigint row id (delivery, event, log entry), sent as a string. */
export const rowIdText = z.string().regex(/^\d+$/);
export const permission = z.enum(PERMISSIONS);

/** A list with the cursor of the next page (null on the last page). */
export const page = <T extends z.ZodType>(item: T, cursor: z.ZodType = z.string()) =>
  z.strictObject({ items: z.array(item), next: cursor.nullable() });

export const invitation = z.strictObject({
  organizationId: uuid,
  id: uuid,
  accountId: uuid,
  email: z.string(),
  groupIds: z.array(uuid),
  status: z.enum(['pending', 'accepted', 'expired', 'revoked']),
  invitedBy: z.string(),
  expiresAt: dateTime,
  acceptedAt: dateTime.nullable(),
  createdAt: dateTime,
});

export const group = z.strictObject({
  organizationId: uuid,
  id: uuid,
  source: z.enum(['local', 'scim', 'saml']),
  displayName: z.string(),
  externalId: z.string().nullable(),
  version: z.number().int(),
  createdAt: dateTime,
  updatedAt: dateTime,
});

/** An admin API key or SCIM token, never its secret. */
export const credential = z.strictObject({
  id: uuid,
  organizationId: uuid,
  kind: z.enum(['scim', 'admin']),
  name: z.string(),
  secretHint: z.string(),
  roles: z.array(z.string()),
  createdAt: dateTime,
  expiresAt: dateTime.nullable(),
  revokedAt: dateTime.nullable(),
  lastUsedAt: dateTime.nullable(),
  /** Null for credentials issued before who issued them was recorded. */
  createdByType: z.enum(['admin_key', 'scim_token', 'account', 'system']).nullable(),
  createdByName: z.string().nullable(),
});

/** A row of an imported CSV file and what became of it. */
export const importRow = z.strictObject({
  row: z.number().int().describe('line in the file; the header is line 1'),
  email: z.string(),
  status: z.enum(['invited', 'skipped']),
  errors: z.array(z.string()),
});

/** A CSV file of invitations, sent as the body. */
export const csvFile = z.string().describe('CSV with the columns email and (optionally) "group membership"');

/** How a refusal is answered (src/core/errors.ts, handler.ts). */
export const errorAnswer = z.strictObject({
  error: z.string(),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});
