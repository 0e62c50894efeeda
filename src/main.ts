import './heap-tuning.ts';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { openContext } from './context.ts';
import { createDemoOrganizationOnFirstStart } from './demo.ts';
import { startServer } from './server.ts';
import { startMetricsServer } from './metrics-endpoint.ts';
import { createLogger } from './log.ts';
import { createReconciler } from './sync/index.ts';
import { warmUpSignInChecks } from './saml/warm-up.ts';

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`orgsync: ${error.message}`);
  process.exit(1);
}

const log = createLogger(config.logLevel);
try {
  if (!config.databaseUrl && !fs.existsSync(path.join(config.dataDir, 'pg'))) {
    // PGlite's first initialization takes a while; say so rather than sit silent.
    process.stdout.write(
      `orgsync: preparing the embedded PostgreSQL in ${path.resolve(config.dataDir)} (first start only)…\n`,
    );
  }
  const ctx = await openContext(config, log);
  const demo = config.demoOrganization ? await createDemoOrganizationOnFirstStart(ctx) : null;
  const running = await startServer(ctx);
  warmUpSignInChecks().catch((error: unknown) => log.warn({ err: error }, 'warming up the sign-in checks failed'));
  const reconciler = config.reconciler.enabled ? createReconciler(ctx) : null;
  reconciler?.start();
  const metrics = config.metrics.port === undefined ? null : await startMetricsServer(ctx, config.metrics.port);
  if (metrics) log.info({ url: metrics.url }, 'metrics listening');
  // Before 'orgsync listening': whoever waits for that line may send SIGTERM the moment it reads it.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      running
        .shutdown(signal, async () => {
          await reconciler?.stop();
          await metrics?.close();
        })
        .then(
          () => process.exit(0),
          (error) => {
            log.error({ err: error }, 'shutdown failed');
            process.exit(1);
          },
        );
    });
  }
  log.info(
    {
      url: running.url,
      publicUrl: config.publicUrl,
      console: `${config.publicUrl}/console`,
      database: ctx.database.kind,
    },
    'orgsync listening',
  );
  if (demo) {
    process.stdout.write(
      [
        '',
        `  orgsync is running at ${config.publicUrl} (${ctx.database.kind} database)`,
        `  Demo organization "${demo.slug}" created. These secrets are shown once; keep them now.`,
        `    SCIM base URL:  ${demo.scimBaseUrl}`,
        `    SCIM token:     ${demo.scimToken}`,
        `    Admin API key:  ${demo.adminApiKey}`,
        `    SAML metadata:  ${demo.samlMetadataUrl}`,
        `    Admin console:  ${config.publicUrl}/console (sign in with the admin API key)`,
        '',
      ].join('\n') + '\n',
    );
  }
} catch (error) {
  log.fatal({ err: error }, 'orgsync failed to start');
  process.exit(1);
}
