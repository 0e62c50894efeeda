import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../src/storage/database.ts';
import { maintainTables, throttleLikeAutovacuum } from '../src/storage/maintenance.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { started, untilWaitingOrEnded } from './support/lock-waits.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
  await db.sql`create table maintenance_probe (id int) with (autovacuum_enabled = false)`;
  await db.sql`create table maintenance_autovacuumed (id int)`;
});
afterAll(async () => {
  await db.close();
});

/** Runs a change and has the session's table counters published before it answers. */
async function change(statement: string) {
  const session = await db.sql.reserve();
  try {
    await session.unsafe(statement);
    await session`select pg_stat_force_next_flush()`;
  } finally {
    session.release();
  }
}

const lastRuns = async (table: string) =>
  (
    await db.sql<{ analyzed: Date | null; vacuumed: Date | null }[]>`
      select last_analyze as analyzed, last_vacuum as vacuumed from pg_stat_user_tables where relname = ${table}`
  )[0]!;

describe('table maintenance where autovacuum is off', () => {
  it("analyzes, and vacuums, a table once it passes autovacuum's own thresholds, and only then", async () => {
    await change('insert into maintenance_probe select generate_series(1, 40)');
    expect(await maintainTables(db.sql)).toEqual({ vacuumed: [], analyzed: [] });

    // 540 rows changed since the last ANALYZE (threshold 50), 540 inserted (threshold 1,000).
    await change('insert into maintenance_probe select generate_series(41, 540)');
    expect(await maintainTables(db.sql)).toEqual({ vacuumed: [], analyzed: ['maintenance_probe'] });
    expect(await lastRuns('maintenance_probe')).toMatchObject({ analyzed: expect.any(Date), vacuumed: null });
    expect(await maintainTables(db.sql)).toEqual({ vacuumed: [], analyzed: [] });

    // 300 dead rows (threshold 50 + 20% of 540).
    await change('delete from maintenance_probe where id <= 300');
    expect(await maintainTables(db.sql)).toEqual({ vacuumed: ['maintenance_probe'], analyzed: ['maintenance_probe'] });
    expect(await lastRuns('maintenance_probe')).toMatchObject({ vacuumed: expect.any(Date) });
  });

  it('leaves a table to autovacuum where it runs', async () => {
    const [row] = await db.sql<{ autovacuum: string }[]>`select current_setting('autovacuum') as autovacuum`;
    await change('insert into maintenance_autovacuumed select generate_series(1, 500)');
    const { analyzed } = await maintainTables(db.sql);
    expect(analyzed.includes('maintenance_autovacuumed')).toBe(row!.autovacuum === 'off');
  });

  // A lock held by a second session: a real PostgreSQL only (the embedded one has a single session).
  it.skipIf(!process.env.DATABASE_URL)('holds up no other statement while a VACUUM waits', async () => {
    await change('delete from maintenance_probe');
    const holder = await db.sql.reserve();
    const small = connect(db.url, 2);
    try {
      await holder`begin`;
      await holder`lock table maintenance_probe in share update exclusive mode`;
      const maintenance = started(maintainTables(small));
      await untilWaitingOrEnded(db.sql, maintenance);
      expect(maintenance.settled).toBe(false);
      // None of these goes to the VACUUM's connection, where it would wait for the lock too.
      const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => small`select ${i}::int as i`));
      expect(answers.map(([row]) => row!.i)).toEqual([0, 1, 2, 3, 4, 5]);
      await holder`rollback`;
      expect(await maintenance.result).toMatchObject({ vacuumed: ['maintenance_probe'] });
    } finally {
      holder.release();
      await small.end();
    }
  });

  it("pauses its VACUUMs as autovacuum does, and hands the pool's connection back as it was", async () => {
    const one = connect(db.url, 1);
    try {
      const settings = async () =>
        (
          await one<{ delay: string; limit: string; autovacuumDelay: string; autovacuumLimit: string }[]>`
            select current_setting('vacuum_cost_delay') as delay, current_setting('vacuum_cost_limit') as limit,
                   current_setting('autovacuum_vacuum_cost_delay') as autovacuum_delay,
                   current_setting('autovacuum_vacuum_cost_limit') as autovacuum_limit`
        )[0]!;
      const before = await settings();
      const session = await one.reserve();
      try {
        await throttleLikeAutovacuum(session);
      } finally {
        session.release();
      }
      const throttled = await settings();
      expect(throttled.delay).toBe(before.autovacuumDelay === '-1' ? before.delay : before.autovacuumDelay);
      expect(throttled.limit).toBe(before.autovacuumLimit === '-1' ? before.limit : before.autovacuumLimit);
      await one`reset vacuum_cost_delay`;
      await one`reset vacuum_cost_limit`;

      await change('delete from maintenance_probe');
      await change('insert into maintenance_probe select generate_series(1, 2000)');
      expect(await maintainTables(one)).toMatchObject({ vacuumed: ['maintenance_probe'] });
      // The pool has one connection: the one the VACUUM ran on.
      expect(await settings()).toEqual(before);
    } finally {
      await one.end();
    }
  });
});
