import type { AppContext } from '../context.ts';
import type { Db } from '../storage/database.ts';

/**
 * Records every authenticated SCIM request per token (method, path, status, duration, resource)
 * so an admin can see what the IdP did. Rows are written in batches off the request path; a
 * crash loses at most the last flush interval, and shutdown flushes what is left.
 */
const FLUSH_INTERVAL_MS = 200;
const MAX_BATCH = 1000;

/** One SCIM request, as an admin reads it back. */
export interface ScimRequestEntry {
  id: string;
  at: Date;
  method: string;
  path: string;
  status: number;
  durationMs: number;
  resourceType: string | null;
  resourceId: string | null;
  /** A refused request: the SCIM error's scimType and detail it was answered with. */
  errorDetail: string | null;
}

export type RequestLogEntry = Omit<ScimRequestEntry, 'id'> & { organizationId: string; credentialId: string };

/** The per-token request log of this process: `record` queues an entry for the next batched write. */
export function scimRequestLog(app: AppContext): { record(entry: RequestLogEntry): void } {
  const pending: RequestLogEntry[] = [];
  let timer: NodeJS.Timeout | undefined;
  let flushing = Promise.resolve();

  // One write at a time, so ids follow the order of the requests (the log reads newest first by
  // id), and a flush returns once everything pending when it was called is written.
  const flush = () => (flushing = flushing.then(writePending));
  const writePending = async () => {
    timer = undefined;
    while (pending.length) {
      const batch = pending.splice(0, MAX_BATCH);
      try {
        // One statement text whatever the batch size (arrays, not a VALUES list per row): prepared
        // once per connection instead of once per distinct size.
        const column = <T>(pick: (e: RequestLogEntry) => T) => batch.map(pick);
        await app.sql`
          insert into scim_requests
            (organization_id, credential_id, at, method, path, status, duration_ms, resource_type, resource_id, error_detail)
          select organization_id, credential_id, at, method, path, status, duration_ms, resource_type, resource_id, error_detail
          from unnest(
            ${column((e) => e.organizationId)}::uuid[], ${column((e) => e.credentialId)}::uuid[],
            ${column((e) => e.at.toISOString())}::timestamptz[], ${column((e) => e.method)}::text[],
            ${column((e) => e.path)}::text[], ${column((e) => e.status)}::int[], ${column((e) => e.durationMs)}::real[],
            ${column((e) => e.resourceType)}::text[], ${column((e) => e.resourceId)}::text[],
            ${column((e) => e.errorDetail)}::text[]
          ) with ordinality as r (organization_id, credential_id, at, method, path, status, duration_ms,
                                  resource_type, resource_id, error_detail, n)
          order by n`;
      } catch (error) {
        app.log.error({ err: error, lost: batch.length }, 'could not record SCIM requests');
      }
    }
  };
  (app.beforeClose ??= []).push(flush);

  return {
    record(entry) {
      pending.push(entry);
      if (pending.length >= MAX_BATCH) void flush();
      else timer ??= setTimeout(() => void flush(), FLUSH_INTERVAL_MS).unref();
    },
  };
}

/** "scimType: detail" of a SCIM error body (JSON text or an object), at most 1,000 characters. */
export function scimErrorDetail(body: unknown): string | null {
  let parsed = body;
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    const text = body.toString();
    if (text.length > 65_536) return null;
    try {
      parsed = JSON.parse(text);
    } catch {
      return text.slice(0, 1000) || null;
    }
  }
  const error = parsed as { detail?: unknown; scimType?: unknown } | null;
  if (!error || typeof error !== 'object' || typeof error.detail !== 'string') return null;
  const scimType = typeof error.scimType === 'string' ? `${error.scimType}: ` : '';
  return `${scimType}${error.detail}`.slice(0, 1000);
}

/**
 * Newest first by the numeric id; pass the last id back as `before` for the next page. The id is
 * answered as text (a bigint), so the order names the table's column: a bare `id` would be the
 * text and sort "9" after "25".
 */
export async function listScimRequests(
  db: Db,
  organizationId: string,
  credentialId: string,
  page: { before?: string; limit: number },
): Promise<ScimRequestEntry[]> {
  return db<ScimRequestEntry[]>`
    select id::text, at, method, path, status, duration_ms, resource_type, resource_id, error_detail from scim_requests
    where organization_id = ${organizationId} and credential_id = ${credentialId}
      ${page.before ? db`and id < ${page.before}` : db``}
    order by scim_requests.id desc limit ${page.limit}`;
}

/** How long the per-token request log is kept. */
export const SCIM_REQUEST_RETENTION_DAYS = 30;

export async function pruneScimRequests(sql: Db): Promise<number> {
  const rows =
    await sql`delete from scim_requests where at < now() - ${SCIM_REQUEST_RETENTION_DAYS} * interval '1 day' returning 1`;
  return rows.length;
}
