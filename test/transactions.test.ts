import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closingStatement, connect, inTransaction } from '../src/storage/database.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

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
