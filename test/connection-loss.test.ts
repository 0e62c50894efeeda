import crypto from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, inTransaction, isDatabaseUnavailable, type Db, type Sql } from '../src/storage/database.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { poolThroughProxy } from './support/tcp-proxy.ts';

/**
 * What the pool does when PostgreSQL ends a session under it (patches/postgres+3.4.9.patch):
 * every query of a lost connection fails, catchably, as "database unavailable"; the pool hands out
 * connections again. Unpatched, these crash the process (a write to a null socket) or hang.
 */
let db: TestDatabase;
let admin: Sql;

const terminate = async (pid: number) => {
  const [row] = await admin<{ done: boolean }[]>`select pg_terminate_backend(${pid}) as done`;
  expect(row!.done).toBe(true);
};
const backendPid = async (sql: Db | postgres.ReservedSql) =>
  (await sql<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid;
const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => new Error('expected it to fail'),
    (e: unknown) => e,
  );

// Terminating sessions needs a real PostgreSQL (the embedded one is a single session).
describe.skipIf(!process.env.DATABASE_URL)('losing a connection', () => {
  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false, poolMax: 1 });
    await db.sql`create table loss_probe (id int primary key)`;
    admin = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await admin?.end();
    await db?.close();
  });

  it('fails the rest of a transaction whose session ends, commits nothing, and the pool goes on', async () => {
    const error = await failure(
      inTransaction(db.sql, async (tx) => {
        await tx`insert into loss_probe values (1)`;
        await terminate(await backendPid(tx));
        await tx`insert into loss_probe values (2)`;
      }),
    );
    expect(isDatabaseUnavailable(error)).toBe(true);
    await inTransaction(db.sql, (tx) => tx`insert into loss_probe values (3)`);
    expect(await db.sql`select id from loss_probe order by id`).toEqual([{ id: 3 }]);
  });

  it('hands a connection to a reservation that was waiting when the reserved one was lost; the lost one is closed for good', async () => {
    const first = await db.sql.reserve();
    const waiting = db.sql.reserve(); // the pool has one connection: this waits for it
    await terminate(await backendPid(first));
    // The pool reconnects for the waiting reservation (unpatched, it drops it and this never resolves).
    const second = await waiting;
    expect(await second`select 1 as one`).toEqual([{ one: 1 }]);
    // The connection is second's now: first's statements must not run in second's session.
    expect(isDatabaseUnavailable(await failure(first`select 1`))).toBe(true);
    first.release(); // a no-op: the pool took the lost connection back already
    expect(await second`select 2 as two`).toEqual([{ two: 2 }]);
    second.release();
    expect(await db.sql`select 3 as three`).toEqual([{ three: 3 }]);
  });

  it('forgets a reservation whose connection could not be made, and serves the next one', async () => {
    const { proxy, sql, close } = await poolThroughProxy(db.url, 1);
    try {
      proxy.cut();
      expect(isDatabaseUnavailable(await failure(sql.reserve()))).toBe(true);
      proxy.restore();
      // The failed reservation left the queue: else the connection opened now would go to it, never to return.
      const reserved = await sql.reserve();
      expect(await reserved`select 1 as one`).toEqual([{ one: 1 }]);
      reserved.release();
    } finally {
      await close();
    }
  });

  describe('a transaction whose COMMIT went out as the line dropped', () => {
    /** Statements sent unnamed (as for PgBouncer), so that the proxy sees COMMIT's text. */
    const throughProxy = () => poolThroughProxy(db.url, 1, { pgbouncer: true });

    it('succeeds when the database committed it, although the answer to COMMIT was lost', async () => {
      const { proxy, sql, close } = await throughProxy();
      try {
        const dropped = proxy.dropAt('\0commit\0', 'lost');
        const result = await inTransaction(sql, async (tx) => {
          await tx`insert into loss_probe values (200)`;
          return 'written';
        });
        await dropped;
        expect(result).toBe('written');
        expect(await db.sql`select id from loss_probe where id = 200`).toEqual([{ id: 200 }]);
      } finally {
        await close();
      }
    });

    it('fails as unavailable, having changed nothing, when the COMMIT never reached the database', async () => {
      const { proxy, sql, close } = await throughProxy();
      try {
        const dropped = proxy.dropAt('\0commit\0', 'never sent');
        const error = await failure(inTransaction(sql, (tx) => tx`insert into loss_probe values (201)`));
        await dropped;
        expect(isDatabaseUnavailable(error)).toBe(true);
        expect(await db.sql`select id from loss_probe where id = 201`).toEqual([]);
      } finally {
        await close();
      }
    });
  });

  it('counts a statement or lock timeout a DBA set as the database being too busy, to retry', async () => {
    const sql = connect(db.url, 2);
    const holder = await sql.reserve();
    try {
      const slow = sql.begin(async (tx) => {
        await tx`set local statement_timeout = 20`;
        await tx`select pg_sleep(5)`;
      });
      expect(isDatabaseUnavailable(await failure(slow))).toBe(true);

      await holder`insert into loss_probe values (100)`;
      await holder`begin`;
      await holder`select * from loss_probe where id = 100 for update`;
      const waiting = sql.begin(async (tx) => {
        await tx`set local lock_timeout = 20`;
        await tx`delete from loss_probe where id = 100`;
      });
      expect(isDatabaseUnavailable(await failure(waiting))).toBe(true);
      await holder`rollback`;
    } finally {
      holder.release();
      await sql.end();
    }
  });
});

// Refusing sessions is PostgreSQL's own doing (ALTER DATABASE … ALLOW_CONNECTIONS false).
describe.skipIf(!process.env.DATABASE_URL)('a database that refuses new sessions', () => {
  const name = `orgsync_refusing_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  let dba: Sql;
  let refusing: Sql;

  beforeAll(async () => {
    dba = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
    await dba.unsafe(`create database ${name}`);
    await dba.unsafe(`alter database ${name} allow_connections false`);
    const url = new URL(process.env.DATABASE_URL!);
    url.pathname = `/${name}`;
    refusing = connect(url.toString(), 1);
  });
  afterAll(async () => {
    await refusing?.end({ timeout: 1 });
    await dba?.unsafe(`alter database ${name} allow_connections true`);
    await dba?.unsafe(`drop database if exists ${name} with (force)`);
    await dba?.end();
  });

  it('is unavailable: each new session is refused (55000, FATAL)', async () => {
    const error = await failure(refusing`select 1`);
    expect(error).toMatchObject({ code: '55000', severity: 'FATAL' });
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it('is told from a statement that fails with the same SQLSTATE', async () => {
    const error = await failure(
      dba.begin(async (tx) => {
        await tx`create temporary sequence refusing_probe`;
        await tx`select currval('refusing_probe')`; // before any nextval in the session
      }),
    );
    expect(error).toMatchObject({ code: '55000', severity: 'ERROR' });
    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});

describe('isDatabaseUnavailable', () => {
  it('tells a lost or refused database from a failing statement', () => {
    for (const code of [
      'ECONNREFUSED',
      'ECONNRESET',
      'CONNECTION_CLOSED',
      'CONNECTION_ENDED',
      '57P01',
      '08006',
      '57P03',
    ])
      expect(isDatabaseUnavailable(Object.assign(new Error(code), { code }))).toBe(true);
    for (const code of ['23505', '40001', '42P01', undefined])
      expect(isDatabaseUnavailable(Object.assign(new Error('x'), { code }))).toBe(false);
    expect(isDatabaseUnavailable(null)).toBe(false);
  });
});
