import type { Db } from '../storage/database.ts';
import { firstRow } from '../storage/database.ts';
import type { Actor } from './actor.ts';
import { recordAudit } from './audit.ts';
import { notFound } from './errors.ts';
import { isUuid } from './ids.ts';
import { generateSecret, sealSecret } from './secrets.ts';
import { checkWebhookUrlOnSave, type WebhookUrlPolicy } from './webhook-url.ts';

export interface WebhookEndpoint {
  organizationId: string;
  id: string;
  url: string;
  events: string[];
  enabled: boolean;
  createdAt: Date;
}

const COLUMNS = 'organization_id, id, url, events, enabled, created_at';

/**
 * Registers a webhook URL (refused now when it names a private address: see webhook-url.ts); the
 * signing secret is returned once and kept sealed.
 */
export async function createWebhookEndpoint(
  db: Db,
  serverSecret: string,
  input: { organizationId: string; url: string; events?: string[] },
  actor: Actor,
  policy: WebhookUrlPolicy,
): Promise<WebhookEndpoint & { secret: string }> {
  const url = await checkWebhookUrlOnSave(input.url, policy);
  const events = input.events?.length ? [...new Set(input.events)] : ['*'];
  const secret = generateSecret('webhook');
  const endpoint = firstRow(
    await db<WebhookEndpoint[]>`
      insert into webhook_endpoints (organization_id, url, secret_sealed, events)
      values (${input.organizationId}, ${url.toString()}, ${sealSecret(secret, serverSecret)}, ${events}::text[])
      returning ${db.unsafe(COLUMNS)}`,
  );
  await recordAudit(
    db,
    input.organizationId,
    actor,
    'webhook.created',
    { type: 'webhook', id: endpoint.id },
    { url: endpoint.url, events },
  );
  return { ...endpoint, secret };
}

/** The delivery circuit breaker's state of an endpoint (kept by sync/deliver.ts). */
export interface CircuitState {
  consecutiveFailures: number;
  /** While in the future, deliveries wait; once past, one trial delivery is sent. */
  circuitOpenUntil: Date | null;
}

export async function listWebhookEndpoints(
  db: Db,
  organizationId: string,
): Promise<(WebhookEndpoint & CircuitState)[]> {
  return db<(WebhookEndpoint & CircuitState)[]>`
    select ${db.unsafe(COLUMNS)}, consecutive_failures, circuit_open_until
    from webhook_endpoints where organization_id = ${organizationId} order by created_at, id`;
}

/** Pauses or resumes an endpoint: a disabled one gets no new deliveries (those queued fail and are retried). */
export async function setWebhookEndpointEnabled(
  db: Db,
  organizationId: string,
  id: string,
  enabled: boolean,
  actor: Actor,
): Promise<WebhookEndpoint> {
  if (!isUuid(id)) throw notFound('webhook endpoint', { id });
  const [endpoint] = await db<WebhookEndpoint[]>`
    update webhook_endpoints set enabled = ${enabled} where organization_id = ${organizationId} and id = ${id}
    returning ${db.unsafe(COLUMNS)}`;
  if (!endpoint) throw notFound('webhook endpoint', { id });
  await recordAudit(
    db,
    organizationId,
    actor,
    enabled ? 'webhook.enabled' : 'webhook.disabled',
    {
      type: 'webhook',
      id,
    },
    { url: endpoint.url },
  );
  return endpoint;
}

/** The enabled endpoints of these organizations, with the events each subscribes to. */
export async function enabledWebhookEndpoints(
  db: Db,
  organizationIds: readonly string[],
): Promise<Pick<WebhookEndpoint, 'organizationId' | 'id' | 'events'>[]> {
  return db<Pick<WebhookEndpoint, 'organizationId' | 'id' | 'events'>[]>`
    select organization_id, id, events from webhook_endpoints
    where organization_id = any(${organizationIds}::uuid[]) and enabled`;
}

/** Where to post a delivery and the endpoint's signing secret (still sealed); null once deleted. */
export async function webhookTarget(
  db: Db,
  organizationId: string,
  id: string,
): Promise<{ url: string; secretSealed: string; enabled: boolean } | null> {
  const [endpoint] = await db<{ url: string; secretSealed: string; enabled: boolean }[]>`
    select url, secret_sealed, enabled from webhook_endpoints
    where organization_id = ${organizationId} and id = ${id}::uuid`;
  return endpoint ?? null;
}

export async function deleteWebhookEndpoint(db: Db, organizationId: string, id: string, actor: Actor): Promise<void> {
  if (!isUuid(id)) throw notFound('webhook endpoint', { id });
  const rows =
    await db`delete from webhook_endpoints where organization_id = ${organizationId} and id = ${id} returning url`;
  if (rows.length === 0) throw notFound('webhook endpoint', { id });
  await recordAudit(db, organizationId, actor, 'webhook.deleted', { type: 'webhook', id }, { url: rows[0]!.url });
}
