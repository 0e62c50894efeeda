import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { closingStatement, connect, inTransaction, type Sql } from '../src/storage/database.ts';
import { sharedTransactions } from '../src/storage/shared-transactions.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { poolThroughProxy } from './support/tcp-proxy.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false, poolMax: 2 });
  await db.sql`create table tx_probe (id int primary key, note text)`;
});
afterAll(() => db.close());

const notes = async () =>
  (await db.sql<{ id: number; note: string }[]>`select id, note from tx_probe order by id`).map(
    (r) => `${r.id}:${r.note}`,
  );

describe('inTransaction', () => {
  it('commits every statement together, pipelined ones too', async () => {
    const answer = await inTransaction(db.sql, async (tx) => {
      // The first statement travels with BEGIN: it already runs inside the transaction.
      const [[first], [second]] = await Promise.all([
        tx`insert into tx_probe values (1, 'a') returning txid_current() as xid`,
        tx`insert into tx_probe values (2, 'b') returning txid_current() as xid`,
      ]);
      expect(first!.xid).toBe(second!.xid);
      return 'done';
    });
    expect(answer).toBe('done');
    expect(await notes()).toEqual(['1:a', '2:b']);
  });

  it('fails, committing nothing, when a statement failed although the work caught its error or left it pending', async () => {
    await expect(
      inTransaction(db.sql, async (tx) => {
        await tx`insert into tx_probe values (7, 'g')`;
        await tx`insert into tx_probe values (1, 'dup')`.catch(() => 'ignored');
      }),
    ).rejects.toThrow('rolled back');
    await expect(
      inTransaction(db.sql, async (tx) => {
        await tx`insert into tx_probe values (8, 'h')`;
        void tx`insert into tx_probe values (1, 'dup')`.catch(() => {});
      }),
    ).rejects.toThrow('rolled back');
    expect(await notes()).toEqual(['1:a', '2:b']);
  });

  it('rolls everything back when the work throws, and frees the connection', async () => {
    await expect(
      inTransaction(db.sql, async (tx) => {
        await tx`insert into tx_probe values (3, 'c')`;
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    await expect(inTransaction(db.sql, (tx) => tx`insert into tx_probe values (1, 'dup')`)).rejects.toMatchObject({
      code: '23505',
    });
    expect(await notes()).toEqual(['1:a', '2:b']);
    // Both pool connections were released: two transactions can still run side by side.
    await Promise.all([inTransaction(db.sql, (tx) => tx`select 1`), inTransaction(db.sql, (tx) => tx`select 1`)]);
  });

  it('undoes only a failed savepoint, leaving the transaction usable', async () => {
    await inTransaction(db.sql, async (tx) => {
      await expect(tx.savepoint((sp) => sp`insert into tx_probe values (1, 'clash')`)).rejects.toMatchObject({
        code: '23505',
      });
      await tx.savepoint((sp) => sp`insert into tx_probe values (4, 'd')`);
      await tx`insert into tx_probe values (5, 'e')`;
    });
    expect(await notes()).toEqual(['1:a', '2:b', '4:d', '5:e']);
  });

  it('sends the closing statements with COMMIT, and answers once they are committed', async () => {
    const turns: string[][] = [];
    let turnOpen = false;
    const pool = connect(db.url, 1, {
      onQuery: (query) => {
        // postgres.js writes what is asked in one turn of the event loop together.
        if (!turnOpen) {
          turnOpen = true;
          turns.push([]);
          setImmediate(() => (turnOpen = false));
        }
        turns.at(-1)!.push(query.trim());
      },
    });
    try {
      await pool`select 'connected'`;
      turns.length = 0;
      let inserted: Promise<unknown> | undefined;
      const answer = await inTransaction(pool, async (tx) => {
        await tx`select 'read' as step`;
        inserted = closingStatement(tx, tx`insert into tx_probe values (30, 'closing') returning id`);
        void closingStatement(tx, tx`insert into tx_probe values (31, 'closing')`);
        return 'done';
      });
      expect(answer).toBe('done');
      expect(await inserted).toEqual([{ id: 30 }]);
      expect(turns).toEqual([
        ['begin', "select 'read' as step"],
        [
          "insert into tx_probe values (30, 'closing') returning id",
          "insert into tx_probe values (31, 'closing')",
          'select pg_current_xact_id_if_assigned()::text as xid', // for when COMMIT's answer is lost
          'commit',
        ],
      ]);
      expect(await notes()).toEqual(expect.arrayContaining(['30:closing', '31:closing']));
    } finally {
      await pool.end();
    }
  });

  it('fails with the error of a failed closing statement, committing nothing', async () => {
    let first: Promise<unknown> | undefined;
    await expect(
      inTransaction(db.sql, async (tx) => {
        await tx`insert into tx_probe values (32, 'before')`;
        first = closingStatement(tx, tx`insert into tx_probe values (33, 'closing')`);
        void closingStatement(tx, tx`insert into tx_probe values (1, 'dup')`);
      }),
    ).rejects.toMatchObject({ code: '23505' });
    await first; // it ran, then was rolled back with the rest
    expect(await notes()).not.toEqual(expect.arrayContaining(['32:before']));
    expect(await notes()).not.toEqual(expect.arrayContaining(['33:closing']));
    // A closing statement after which the work throws is rolled back too, its failure unreported.
    await expect(
      inTransaction(db.sql, (tx) => {
        void closingStatement(tx, tx`insert into tx_probe values (1, 'dup')`);
        return Promise.reject(new Error('changed my mind'));
      }),
    ).rejects.toThrow('changed my mind');
  });

  it('runs inside the caller’s transaction when given one', async () => {
    await expect(
      inTransaction(db.sql, async (outer) => {
        await inTransaction(outer, (inner) => inner`insert into tx_probe values (6, 'f')`);
        throw new Error('outer fails');
      }),
    ).rejects.toThrow('outer fails');
    expect(await notes()).not.toContain('6:f');
  });
});

describe('a pool for PgBouncer in transaction mode', () => {
  it('sends a query only once the one before it on the connection was answered', async () => {
    const sentAt = new Map<string, number>();
    const pool = connect(db.url, 1, { pgbouncer: true, onQuery: (q) => sentAt.set(q.trim(), performance.now()) });
    try {
      await pool`select 'connected'`;
      await Promise.all([pool`select 'a', pg_sleep(0.05)`, pool`select 'b'`]);
      // 'a' takes the server at least 50 ms to answer. Pipelined, 'b' would go out right behind it
      // (and PgBouncer 1.18 would drop its answer); one at a time, it waits for that answer.
      const gap = sentAt.get("select 'b'")! - sentAt.get("select 'a', pg_sleep(0.05)")!;
      expect(gap).toBeGreaterThanOrEqual(50);
    } finally {
      await pool.end();
    }
  });

  it('still runs transactions, both kinds, beside other queries', async () => {
    const pool = connect(db.url, 2, { pgbouncer: true });
    try {
      const [, , counted] = await Promise.all([
        pool.begin((tx) => tx`insert into tx_probe values (20, 'begin')`),
        inTransaction(pool, (tx) => tx`insert into tx_probe values (21, 'reserved')`),
        pool`select count(*)::int as n from tx_probe`,
        pool.begin((tx) => tx`select 1`),
      ]);
      expect(counted[0]!.n).toBeGreaterThan(0);
      expect(await notes()).toEqual(expect.arrayContaining(['20:begin', '21:reserved']));
    } finally {
      await pool.end();
    }
  });
});

describe('sharedTransactions', () => {
  const answers = { isAnswer: (error: unknown) => error instanceof RangeError };
  /** A write that inserts `id` and answers the id of the transaction it ran in. */
  const insert = (id: number, note: string) => async (sql: Sql) =>
    (
      await sql<{ xid: string }[]>`insert into tx_probe values (${id}, ${note}) returning txid_current()::text as xid`
    )[0]!.xid;

  it('runs the first writes at once and those that waited in one transaction; a refusal stays its own', async () => {
    const shared = sharedTransactions(answers);
    const refuse = () => Promise.reject(new RangeError('refused'));
    const settled = await Promise.allSettled([
      shared(db.sql, 'k', insert(101, 'a')),
      shared(db.sql, 'k', insert(102, 'b')),
      shared(db.sql, 'k', insert(103, 'c')),
      shared(db.sql, 'k', refuse),
      shared(db.sql, 'k', insert(104, 'd')),
    ]);
    const xids = settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message));
    expect(xids[3]).toBe('refused');
    expect(xids[2]).toBe(xids[4]);
    expect(new Set([xids[0], xids[1], xids[2]]).size).toBe(3);
    expect(await notes()).toEqual(expect.arrayContaining(['101:a', '102:b', '103:c', '104:d']));
  });

  it('runs each write of a batch on its own when one of them failed in the database, even if it went on', async () => {
    const shared = sharedTransactions(answers);
    // 201 is taken, so its batch is rolled back; the write, last of its batch, swallows the error,
    // so only COMMIT (answered ROLLBACK) says so.
    await db.sql`insert into tx_probe values (201, 'taken')`;
    const swallowing = (sql: Sql) => insert(201, 'again')(sql).catch(() => 'swallowed');
    const settled = await Promise.all([
      shared(db.sql, 'k', insert(202, 'a')),
      shared(db.sql, 'k', insert(203, 'b')),
      shared(db.sql, 'k', insert(204, 'c')),
      shared(db.sql, 'k', insert(205, 'd')),
      shared(db.sql, 'k', swallowing),
    ]);
    expect(settled[4]).toBe('swallowed');
    // Run again alone: 204 and 205 were each committed in a transaction of its own.
    expect(settled[2]).not.toBe(settled[3]);
    expect(await notes()).toEqual(expect.arrayContaining(['201:taken', '202:a', '203:b', '204:c', '205:d']));
  });

  it('fails every write of a batch, running none again, when the database is out of reach', async () => {
    const shared = sharedTransactions(answers);
    let calls = 0;
    const lost = async (sql: Sql) => {
      calls++;
      await sql`select 1`;
      throw Object.assign(new Error('connection lost'), { code: 'ECONNRESET' });
    };
    const settled = await Promise.allSettled([
      shared(db.sql, 'k', insert(301, 'a')),
      shared(db.sql, 'k', insert(302, 'b')),
      shared(db.sql, 'k', insert(303, 'c')),
      shared(db.sql, 'k', lost),
    ]);
    expect(settled.slice(2).map((s) => s.status)).toEqual(['rejected', 'rejected']);
    expect(calls).toBe(1);
    expect(await notes()).not.toContain('303:c');
  });

  // A line to cut: a real PostgreSQL only.
  it.skipIf(!process.env.DATABASE_URL)(
    "answers the writes of a batch whose COMMIT's answer was lost with the line, when it committed",
    async () => {
      const shared = sharedTransactions(answers);
      // Statements sent unnamed (as for PgBouncer), so that the proxy sees COMMIT's text.
      const { proxy, sql, close } = await poolThroughProxy(db.url, 2, { pgbouncer: true });
      try {
        const dropped = proxy.dropAt('\0commit\0', 'lost');
        // The first two run at once, each alone (no COMMIT); the three behind them share one.
        const settled = await Promise.allSettled([
          shared(sql, 'k', insert(501, 'a')),
          shared(sql, 'k', insert(502, 'b')),
          shared(sql, 'k', insert(503, 'c')),
          shared(sql, 'k', insert(504, 'd')),
          shared(sql, 'k', insert(505, 'e')),
        ]);
        await dropped;
        expect(settled.map((s) => s.status)).toEqual(Array(5).fill('fulfilled'));
        const xids = settled.map((s) => (s as PromiseFulfilledResult<string>).value);
        expect(new Set(xids.slice(2)).size).toBe(1);
        expect(await notes()).toEqual(expect.arrayContaining(['501:a', '502:b', '503:c', '504:d', '505:e']));
      } finally {
        await close();
      }
    },
  );

  // Two transactions open at once: a real PostgreSQL only (the embedded one has a single session).
  it.skipIf(!process.env.DATABASE_URL)('gives the batches of a key running at once lanes of their own', async () => {
    const lanes: number[] = [];
    const shared = sharedTransactions({
      ...answers,
      maxBatch: 2,
      open: (_tx, _key, lane) => Promise.resolve(lanes.push(lane)),
    });
    /** A write that answers once the test lets it. */
    const held = () => {
      let release = () => {};
      const released = new Promise<void>((resolve) => (release = resolve));
      return { release, write: async () => (await released, 'done') };
    };
    const [first, second, batchA] = [held(), held(), held()];
    const done = () => Promise.resolve('done');
    const all = Promise.all([
      shared(db.sql, 'lanes', first.write), // alone, in lane 0
      shared(db.sql, 'lanes', second.write), // alone, in lane 1
      shared(db.sql, 'lanes', batchA.write), // these two wait, and go together when a lane frees
      shared(db.sql, 'lanes', done),
      shared(db.sql, 'lanes', done), // and these two when the other does
      shared(db.sql, 'lanes', done),
    ]);
    first.release();
    await vi.waitUntil(() => lanes.length === 1);
    // The first batch still runs (it waits on batchA) when the second starts beside it.
    second.release();
    await vi.waitUntil(() => lanes.length === 2);
    batchA.release();
    expect(await all).toEqual(Array(6).fill('done'));
    expect(lanes).toEqual([0, 1]);
  });

  // Two sessions deadlocking: a real PostgreSQL only.
  it.skipIf(!process.env.DATABASE_URL)(
    'runs a write alone again when it lost a deadlock, which left nothing done',
    async () => {
      const shared = sharedTransactions(answers);
      await db.sql`insert into tx_probe values (401, 'first'), (402, 'second')`;
      const watcher = connect(db.url, 1);
      const holder = await db.sql.reserve();
      const lockWaits = async () =>
        (
          await watcher<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`
        )[0]!.n;
      try {
        let runs = 0;
        let locked!: () => void;
        const secondLocked = new Promise<void>((resolve) => (locked = resolve));
        let go!: () => void;
        const onToTheFirst = new Promise<void>((resolve) => (go = resolve));
        // Takes 402, then 401; its first run waits for the test between the two.
        const write = (sql: Sql) =>
          inTransaction(sql, async (tx) => {
            const run = ++runs;
            await tx`set local deadlock_timeout = '10ms'`;
            await tx`update tx_probe set note = ${`run ${run}`} where id = 402`;
            if (run === 1) {
              locked();
              await onToTheFirst;
            }
            await tx`update tx_probe set note = ${`run ${run}`} where id = 401`;
            return run;
          });

        await holder`begin`;
        await holder`set local deadlock_timeout = '60s'`; // so that the write is the one to find the deadlock
        await holder`select from tx_probe where id = 401 for update`;
        const written = shared(db.sql, 'deadlock', write);
        written.catch(() => {}); // awaited below, once the holder is done
        await secondLocked;
        const holderWaits = holder`select from tx_probe where id = 402 for update`.execute();
        await vi.waitUntil(async () => (await lockWaits()) === 1, { timeout: 10_000, interval: 10 });
        go(); // the write now waits for the holder, which waits for it: PostgreSQL rolls the write back
        await holderWaits;
        await holder`commit`;
        expect(await written).toBe(2);
        expect(await notes()).toEqual(expect.arrayContaining(['401:run 2', '402:run 2']));
      } finally {
        holder.release();
        await watcher.end();
      }
    },
  );
});
