import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sql } from './database.ts';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');
/** Any constant works; it only has to be the same for every orgsync instance. */
const MIGRATION_LOCK_KEY = 7_317_001;

export interface Migration {
  version: string;
  sql: string;
  checksum: string;
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return fs
    .readdirSync(dir)
    .filter((file) => /^\d{3}_[a-z0-9_]+\.sql$/.test(file))
    .sort()
    .map((file) => {
      const sql = fs.readFileSync(path.join(dir, file), 'utf8');
      return { version: file.replace(/\.sql$/, ''), sql, checksum: sha256(sql) };
    });
}

/**
 * Applies every migration not yet applied, in order, in one transaction. The advisory lock makes
 * instances that start together wait for each other; the later ones then find nothing to do.
 * Returns the versions it applied.
 */
export async function migrate(sql: Sql, migrations = loadMigrations()): Promise<string[]> {
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
    await tx`create table if not exists schema_migrations (
      version text primary key,
      checksum text not null,
      applied_at timestamptz not null default now()
    )`;
    const applied = new Map<string, string>();
    for (const row of await tx<
      { version: string; checksum: string }[]
    >`select version, checksum from schema_migrations`) {
      applied.set(row.version, row.checksum);
    }
    const done: string[] = [];
    for (const migration of migrations) {
      const checksum = applied.get(migration.version);
      if (checksum !== undefined) {
        if (checksum !== migration.checksum) {
          throw new Error(
            `migration ${migration.version} was changed after it was applied; add a new migration instead`,
          );
        }
        continue;
      }
      await tx.unsafe(migration.sql);
      await tx`insert into schema_migrations (version, checksum) values (${migration.version}, ${migration.checksum})`;
      done.push(migration.version);
    }
    return done;
  });
}

function sha256(text: string): string {
  return crypto.createHash('sha256').update(text).digest('hex');
}
