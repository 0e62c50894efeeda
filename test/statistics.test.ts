import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeStaleTables } from '../src/storage/statistics.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
  await db.sql`create table statistics_probe (id int) with (autovacuum_enabled = false)`;
  await db.sql`create table statistics_autovacuumed (id int)`;
});
afterAll(async () => {
  await db.close();
});

/** Inserts rows and has the session's table counters published before it answers. */
async function insertRows(table: string, rows: number) {
  const session = await db.sql.reserve();
  try {
    await session`insert into ${session(table)} select generate_series(1, ${rows})`;
    await session`select pg_stat_force_next_flush()`;
  } finally {
    session.release();
  }
}

const lastAnalyzed = async (table: string) =>
  (await db.sql<{ at: Date | null }[]>`select last_analyze as at from pg_stat_user_tables where relname = ${table}`)[0]!
    .at;

describe('planner statistics where autovacuum is off', () => {
  it('analyzes a table once it changed by more than autovacuum would let pass, and only then', async () => {
    await insertRows('statistics_probe', 40);
    expect(await analyzeStaleTables(db.sql)).not.toContain('statistics_probe');
    await insertRows('statistics_probe', 500);
    expect(await analyzeStaleTables(db.sql)).toContain('statistics_probe');
    expect(await lastAnalyzed('statistics_probe')).not.toBeNull();
    expect(await analyzeStaleTables(db.sql)).not.toContain('statistics_probe');
  });

  it('leaves a table to autovacuum where it runs', async () => {
    const [row] = await db.sql<{ autovacuum: string }[]>`select current_setting('autovacuum') as autovacuum`;
    await insertRows('statistics_autovacuumed', 500);
    const analyzed = await analyzeStaleTables(db.sql);
    expect(analyzed.includes('statistics_autovacuumed')).toBe(row!.autovacuum === 'off');
  });
});
