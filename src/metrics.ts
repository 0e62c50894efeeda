import client from 'prom-client';

/**
 * The process's Prometheus instruments, served by `GET /metrics` (src/metrics-endpoint.ts). Label
 * values come from small fixed sets (route patterns, outcomes, reason codes, job names): never an
 * organization id, an email or a raw path, so neither tenants nor people show up in monitoring
 * and the number of series stays bounded.
 */
export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry, prefix: 'orgsync_' });

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const httpRequestDuration = new client.Histogram({
  name: 'orgsync_http_request_duration_seconds',
  help: 'HTTP requests by method, route pattern and status, with their duration',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const scimOperations = new client.Counter({
  name: 'orgsync_scim_operations_total',
  help: 'SCIM requests by method, resource type and outcome',
  labelNames: ['method', 'resource', 'outcome'] as const,
  registers: [registry],
});

export const ssoSignIns = new client.Counter({
  name: 'orgsync_sso_sign_ins_total',
  help: 'SAML sign-ins by outcome (success, refused) and refusal reason',
  labelNames: ['outcome', 'reason'] as const,
  registers: [registry],
});

export const deliveryOutcomes = new client.Counter({
  name: 'orgsync_deliveries_total',
  help: 'Delivery attempts (emails and webhooks) by outcome: delivered, retrying, dead',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

export const reconcilerJobDuration = new client.Histogram({
  name: 'orgsync_reconciler_job_duration_seconds',
  help: 'Reconciler jobs run by this instance, by job and result (ok, failed)',
  labelNames: ['job', 'result'] as const,
  buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
  registers: [registry],
});

export const reconcilerJobOverlaps = new client.Counter({
  name: 'orgsync_reconciler_job_overlaps_total',
  help: 'Ticks of a job skipped because its previous run in this instance had not finished',
  labelNames: ['job'] as const,
  registers: [registry],
});

/** The outcome of a SCIM request as a bounded label: what happened, not to whom. */
export function scimOutcome(status: number): string {
  if (status < 400) return 'success';
  const known: Record<number, string> = {
    400: 'invalid',
    401: 'unauthorized',
    404: 'not_found',
    409: 'conflict',
    413: 'too_large',
    429: 'rate_limited',
    501: 'not_implemented',
  };
  return known[status] ?? (status >= 500 ? 'error' : 'client_error');
}
