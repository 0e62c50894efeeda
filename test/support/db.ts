import crypto from 'node:crypto';
import postgres from 'postgres';
import { EMBEDDED_POOL_MAX, connect, type Database } from '../../src/storage/database.ts';
import { startEmbeddedPostgres } from '../../src/storage/embedded.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { openNotifications } from '../../src/storage/notifications.ts';

export interface TestDatabase extends Database {
  url: string;
}

/**
 * A fresh, migrated database of its own for one test file: a new database on the PostgreSQL of
 * DATABASE_URL (dropped at close), or an in-memory embedded PostgreSQL when it is not set.
 */
export async function createTestDatabase(options: { migrate?: boolean; poolMax?: number } = {}): Promise<TestDatabase> {
  const base = process.env.DATABASE_URL;
  let db: TestDatabase;
  if (base) {
    const name = `orgsync_test_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
    const admin = postgres(base, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    const url = new URL(base);
    url.pathname = `/${name}`;
    const sql = connect(url.toString(), options.poolMax ?? 10);
    // As openDatabase does: a listening session of its own (it connects on the first LISTEN).
    const notifications = openNotifications(url.toString());
    db = {
      url: url.toString(),
      sql,
      kind: 'postgres',
      notifications,
      close: async () => {
        await notifications.close();
        await sql.end({ timeout: 5 });
        await admin.unsafe(`drop database if exists ${name} with (force)`);
        await admin.end();
      },
    };
  } else {
    const embedded = await startEmbeddedPostgres(':memory:');
    const sql = connect(embedded.url, EMBEDDED_POOL_MAX);
    db = {
      url: embedded.url,
      sql,
      kind: 'embedded',
      close: async () => {
        await sql.end({ timeout: 5 });
        await embedded.stop();
      },
    };
  }
  if (options.migrate !== false) await migrate(db.sql);
  return db;
}
