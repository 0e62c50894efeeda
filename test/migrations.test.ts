import { afterEach, describe, expect, it } from 'vitest';
import { loadMigrations, migrate } from '../src/storage/migrate.ts';
import { connect } from '../src/storage/database.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

describe('migrations', () => {
  let db: TestDatabase;
  afterEach(async () => db?.close());

  it('apply once; a second run applies nothing', async () => {
    db = await createTestDatabase({ migrate: false });
    const all = loadMigrations().map((m) => m.version);
    expect(await migrate(db.sql)).toEqual(all);
    expect(await migrate(db.sql)).toEqual([]);
    const rows = await db.sql`select version from schema_migrations order by version`;
    expect(rows.map((r) => r.version)).toEqual(all);
  });

  it('are safe when several instances start at once', async () => {
    db = await createTestDatabase({ migrate: false });
    // Separate pools, as separate processes would have.
    const pools = [0, 1, 2, 3].map(() => connect(db.url, 1));
    try {
      const results = await Promise.all(pools.map((sql) => migrate(sql)));
      const applied = results.flat();
      expect(applied).toEqual(loadMigrations().map((m) => m.version));
      expect(results.filter((r) => r.length > 0)).toHaveLength(1);
    } finally {
      await Promise.all(pools.map((sql) => sql.end()));
    }
  });

  it('refuse to run when an applied migration was edited', async () => {
    db = await createTestDatabase();
    const edited = loadMigrations().map((m, i) => (i === 0 ? { ...m, checksum: 'different' } : m));
    await expect(migrate(db.sql, edited)).rejects.toThrow(/was changed after it was applied/);
  });

  it('roll back entirely when one fails', async () => {
    db = await createTestDatabase({ migrate: false });
    const broken = [...loadMigrations(), { version: '999_broken', sql: 'create table x (; ', checksum: 'x' }];
    await expect(migrate(db.sql, broken)).rejects.toThrow();
    const [row] = await db.sql`select to_regclass('organizations') as t, to_regclass('schema_migrations') as m`;
    expect(row).toEqual({ t: null, m: null });
  });
});
