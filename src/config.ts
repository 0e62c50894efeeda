import cron from 'node-cron';
import { z } from 'zod';

/** Thrown when the environment does not describe a runnable service. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const bool = z.stringbool({ truthy: ['true', '1', 'yes', 'on'], falsy: ['false', '0', 'no', 'off'] });

const cronExpression = z.string().refine((v) => cron.validate(v), 'must be a cron expression (5 or 6 fields)');

const schema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    HOST: z.string().min(1).default('127.0.0.1'),
    PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
    DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
    // A few connections that pipeline single statements beat many that each wake a backend for
    // one (README, DATABASE_POOL_MAX).
    DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(4),
    DATABASE_DIRECT_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
    DATABASE_PGBOUNCER: bool.default(false),
    DATA_DIR: z.string().min(1).default('./data'),
    SERVER_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    BODY_LIMIT: z
      .string()
      .regex(/^\d+(b|kb|mb)$/i, 'must look like 512kb or 1mb')
      .default('1mb'),
    SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(300_000).default(10_000),
    DEMO_ORGANIZATION: bool.optional(),
    TRUST_PROXY: bool.default(false),
    SINGLE_ORGANIZATION_POLICY: bool.default(false),
    SMTP_URL: z.url({ protocol: /^smtps?$/ }).optional(),
    MAIL_FROM: z.string().min(3).default('orgsync <no-reply@localhost>'),
    RECONCILER: bool.default(true),
    RECONCILE_EVENTS_SCHEDULE: cronExpression.default('*/2 * * * * *'),
    RECONCILE_INVITES_SCHEDULE: cronExpression.default('* * * * *'),
    RECONCILE_ROLES_SCHEDULE: cronExpression.default('*/15 * * * *'),
    DELIVERY_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(10),
    DELIVERY_BACKOFF_MS: z.coerce.number().int().min(10).max(86_400_000).default(30_000),
    DELIVERY_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
    WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: bool.default(false),
    WEBHOOK_ENDPOINT_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
    WEBHOOK_BREAKER_FAILURES: z.coerce.number().int().min(1).max(1000).default(5),
    WEBHOOK_BREAKER_COOLDOWN_MS: z.coerce.number().int().min(100).max(86_400_000).default(60_000),
    SAML_METADATA_ALLOW_PRIVATE_NETWORKS: bool.default(false),
    SAML_METADATA_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
    SAML_METADATA_MAX_BYTES: z.coerce
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024)
      .default(1024 * 1024),
    SAML_METADATA_REFRESH_MIN_SECONDS: z.coerce.number().int().min(0).max(604_800).default(300),
    SAML_METADATA_REFRESH_MAX_SECONDS: z.coerce.number().int().min(0).max(604_800).default(86_400),
    RECONCILE_METADATA_SCHEDULE: cronExpression.default('* * * * *'),
    RECONCILE_MAINTENANCE_SCHEDULE: cronExpression.default('*/10 * * * * *'),
    SCIM_RATE_LIMIT: z.coerce.number().min(0).max(100_000).default(100),
    SCIM_RATE_BURST: z.coerce.number().int().min(1).max(1_000_000).default(1000),
    SCIM_BULK_MAX_OPERATIONS: z.coerce.number().int().min(1).max(100_000).default(1000),
    SCIM_BULK_MAX_PAYLOAD_BYTES: z.coerce
      .number()
      .int()
      .min(1024)
      .max(256 * 2 ** 20)
      .default(4 * 2 ** 20),
    SCIM_BULK_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
    DNS_SERVERS: z
      .string()
      .regex(/^[0-9a-f.:[\]]+(,[0-9a-f.:[\]]+)*$/i, 'must be a comma-separated list of ip or ip:port')
      .optional(),
    METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
    METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  })
  .superRefine((env, ctx) => {
    if (env.DATABASE_URL && !env.SERVER_SECRET) {
      ctx.addIssue({
        code: 'custom',
        path: ['SERVER_SECRET'],
        message: 'is required when DATABASE_URL is set (it keys the hashes of every stored secret)',
      });
    }
    if (env.SAML_METADATA_REFRESH_MIN_SECONDS > env.SAML_METADATA_REFRESH_MAX_SECONDS) {
      ctx.addIssue({
        code: 'custom',
        path: ['SAML_METADATA_REFRESH_MIN_SECONDS'],
        message: 'must not be above SAML_METADATA_REFRESH_MAX_SECONDS',
      });
    }
  });

export interface Config {
  env: 'development' | 'production' | 'test';
  port: number;
  host: string;
  /** Externally visible base URL without a trailing slash; SCIM locations and SAML metadata use it. */
  publicUrl: string;
  /** Absent: the embedded PostgreSQL in `dataDir` is used. */
  databaseUrl?: string;
  databasePoolMax: number;
  /**
   * A connection that bypasses a transaction-mode pooler (PgBouncer), for LISTEN and migrations;
   * defaults to `databaseUrl`.
   */
  databaseDirectUrl?: string;
  /** `databaseUrl` goes through PgBouncer in transaction mode: no named prepared statements. */
  databasePgbouncer: boolean;
  dataDir: string;
  /** Absent only in embedded mode, where one is generated and kept in `dataDir`. */
  serverSecret?: string;
  logLevel: string;
  bodyLimit: string;
  shutdownTimeoutMs: number;
  /** Create a demo organization on the first start. Defaults to on for the embedded database only. */
  demoOrganization: boolean;
  trustProxy: boolean;
  reconciler: ReconcilerConfig;
  /** Absent: emails are not sent, their links are logged (local use). */
  smtpUrl?: string;
  mailFrom: string;
  /** The single-organization rule of organizations created from now on (each keeps its own setting). */
  singleOrganizationPolicy: boolean;
  /** Per SCIM token: sustained requests per second (0: no limit) and the burst allowed above it. */
  scimRateLimit: { perSecond: number; burst: number };
  /** Fetching IdP metadata from a connection's metadata URL (at once when saved, then by the reconciler). */
  samlMetadata: SamlMetadataConfig;
  /**
   * SCIM /Bulk: the most operations and bytes one request may carry (advertised in
   * ServiceProviderConfig), and how many independent user creates of one request run at once.
   */
  scimBulk: { maxOperations: number; maxPayloadSize: number; concurrency: number };
  /** DNS servers for domain verification (`ip` or `ip:port`); absent: the system's resolvers. */
  dnsServers?: string[];
  /**
   * `GET /metrics` (Prometheus): on a port of its own (`port`), and/or on the main port when a
   * bearer `token` is set. Neither: no metrics endpoint.
   */
  metrics: { port?: number; token?: string };
}

export interface SamlMetadataConfig {
  /** SAML_METADATA_ALLOW_PRIVATE_NETWORKS: metadata URLs may point at private and loopback addresses. */
  allowPrivateNetworks: boolean;
  /** The whole fetch, body included. */
  timeoutMs: number;
  maxBytes: number;
  /**
   * The next refresh is when the metadata's cacheDuration or validUntil says, kept between these
   * bounds (the ceiling also when the metadata says nothing); a failed fetch is retried after the floor.
   */
  refreshFloorSeconds: number;
  refreshCeilingSeconds: number;
}

export interface ReconcilerConfig {
  /** Run the reconciler's schedules in this process. */
  enabled: boolean;
  /** Dispatch new events and send due deliveries (every instance polls; work is shared; NOTIFY wakes dispatch too). */
  eventsSchedule: string;
  /** Expire and match invitations (one instance per tick). */
  invitesSchedule: string;
  /** Full role-mapping repair pass (one instance per tick). */
  rolesSchedule: string;
  /** Refresh the SAML connections whose metadata URL is due (one instance per tick). */
  metadataSchedule: string;
  /** VACUUM and ANALYZE as autovacuum would, where it is off (one instance per tick; storage/maintenance.ts). */
  maintenanceSchedule: string;
  delivery: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number; concurrency: number };
  webhookTimeoutMs: number;
  webhookAllowPrivateNetworks: boolean;
  /** Webhook sends in flight at once per endpoint, per instance. */
  webhookEndpointConcurrency: number;
  /** An endpoint failing `failures` times in a row is paused for `cooldownMs`. */
  breaker: { failures: number; cooldownMs: number };
}

/** Reads the configuration from an environment; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = String(issue.path[0] ?? 'environment');
        const got = name in input ? ` (got ${JSON.stringify(input[name])})` : '';
        return `${name}: ${issue.message}${got}`;
      }),
    );
  }
  const e = parsed.data;
  return {
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    publicUrl: (e.PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ''),
    databaseUrl: e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    databaseDirectUrl: e.DATABASE_DIRECT_URL,
    databasePgbouncer: e.DATABASE_PGBOUNCER,
    dataDir: e.DATA_DIR,
    serverSecret: e.SERVER_SECRET,
    logLevel: e.LOG_LEVEL,
    bodyLimit: e.BODY_LIMIT,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    demoOrganization: e.DEMO_ORGANIZATION ?? !e.DATABASE_URL,
    trustProxy: e.TRUST_PROXY,
    smtpUrl: e.SMTP_URL,
    singleOrganizationPolicy: e.SINGLE_ORGANIZATION_POLICY,
    mailFrom: e.MAIL_FROM,
    scimRateLimit: { perSecond: e.SCIM_RATE_LIMIT, burst: e.SCIM_RATE_BURST },
    samlMetadata: {
      allowPrivateNetworks: e.SAML_METADATA_ALLOW_PRIVATE_NETWORKS,
      timeoutMs: e.SAML_METADATA_TIMEOUT_MS,
      maxBytes: e.SAML_METADATA_MAX_BYTES,
      refreshFloorSeconds: e.SAML_METADATA_REFRESH_MIN_SECONDS,
      refreshCeilingSeconds: e.SAML_METADATA_REFRESH_MAX_SECONDS,
    },
    scimBulk: {
      maxOperations: e.SCIM_BULK_MAX_OPERATIONS,
      maxPayloadSize: e.SCIM_BULK_MAX_PAYLOAD_BYTES,
      concurrency: e.SCIM_BULK_CONCURRENCY,
    },
    dnsServers: e.DNS_SERVERS?.split(','),
    metrics: { port: e.METRICS_PORT, token: e.METRICS_TOKEN },
    reconciler: {
      enabled: e.RECONCILER,
      eventsSchedule: e.RECONCILE_EVENTS_SCHEDULE,
      invitesSchedule: e.RECONCILE_INVITES_SCHEDULE,
      rolesSchedule: e.RECONCILE_ROLES_SCHEDULE,
      metadataSchedule: e.RECONCILE_METADATA_SCHEDULE,
      maintenanceSchedule: e.RECONCILE_MAINTENANCE_SCHEDULE,
      delivery: {
        maxAttempts: e.DELIVERY_MAX_ATTEMPTS,
        baseDelayMs: e.DELIVERY_BACKOFF_MS,
        maxDelayMs: Math.max(e.DELIVERY_BACKOFF_MS, 6 * 3_600_000),
        concurrency: e.DELIVERY_CONCURRENCY,
      },
      webhookEndpointConcurrency: e.WEBHOOK_ENDPOINT_CONCURRENCY,
      breaker: { failures: e.WEBHOOK_BREAKER_FAILURES, cooldownMs: e.WEBHOOK_BREAKER_COOLDOWN_MS },
      webhookTimeoutMs: e.WEBHOOK_TIMEOUT_MS,
      webhookAllowPrivateNetworks: e.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
    },
  };
}
