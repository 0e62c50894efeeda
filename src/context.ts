import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import type { Config } from './config.ts';
import { followCredentialChanges } from './core/credentials.ts';
import { adoptDefaultMembershipPolicy, configureMembershipPolicy } from './core/policy.ts';
import { createLogger, type Logger } from './log.ts';
import { openDatabase, type Database, type Sql } from './storage/database.ts';
import { migrate } from './storage/migrate.ts';

/** What every edge adapter gets: configuration, the database and a logger. */
export interface AppContext {
  config: Config & { serverSecret: string };
  database: Database;
  sql: Sql;
  log: Logger;
  /** Run at shutdown after the last request and before the database closes (e.g. flushing buffered writes). */
  beforeClose?: Array<() => Promise<void>>;
}

/** Opens the database, applies migrations and resolves the server secret. */
export async function openContext(config: Config, log: Logger = createLogger(config.logLevel)): Promise<AppContext> {
  const serverSecret = config.serverSecret ?? embeddedServerSecret(config.dataDir);
  const database = await openDatabase(config);
  try {
    const applied = await migrate(database.sql);
    if (applied.length > 0) log.info({ applied }, 'database migrated');
  } catch (error) {
    await database.close();
    throw error;
  }
  // The process's membership policy, for every channel that joins people (SCIM, SSO, invitations, the CLI).
  configureMembershipPolicy({ singleOrganization: config.singleOrganizationPolicy });
  await adoptDefaultMembershipPolicy(database.sql);
  if (database.notifications) await followCredentialChanges(database.notifications);
  return { config: { ...config, serverSecret }, database, sql: database.sql, log };
}

/** Embedded mode only: a secret generated on first start and kept beside the data it protects. */
function embeddedServerSecret(dataDir: string): string {
  const file = path.join(dataDir, 'server-secret');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  fs.mkdirSync(dataDir, { recursive: true });
  const secret = crypto.randomBytes(32).toString('base64url');
  fs.writeFileSync(file, secret, { mode: 0o600, flag: 'wx' });
  return secret;
}
