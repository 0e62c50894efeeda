import postgres from 'postgres';
import type { Config } from '../config.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded.ts';

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;
/** Anything a query can run on: the pool or an open transaction. */
export type Db = Sql | Tx;
/** A piece of SQL with its parameters, to compose into a statement. */
export type Fragment = postgres.PendingQuery<postgres.Row[]>;

export interface Database {
  sql: Sql;
  kind: 'postgres' | 'embedded';
  /** Ends the pool (waiting for running queries) and stops the embedded server if there is one. */
  close(): Promise<void>;
}

export const EMBEDDED_POOL_MAX = 1;

/** `onQuery` sees every statement sent (tests count round trips with it). */
export function connect(url: string, max: number, options: { onQuery?: (query: string) => void } = {}): Sql {
  const { onQuery } = options;
  return postgres(url, {
    max,
    ...(onQuery ? { debug: (_connection: number, query: string) => onQuery(query) } : {}),
    onnotice: () => {},
    // Rows come back with camelCase keys; SQL stays snake_case.
    transform: { column: { from: postgres.toCamel } },
    connection: { application_name: 'orgsync' },
  });
}

/** Opens the configured PostgreSQL, or the embedded one in `config.dataDir` when no DATABASE_URL is set. */
export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'databasePoolMax' | 'dataDir'>,
): Promise<Database> {
  if (config.databaseUrl) {
    const sql = connect(config.databaseUrl, config.databasePoolMax);
    return { sql, kind: 'postgres', close: () => sql.end({ timeout: 5 }) };
  }
  const embedded: EmbeddedPostgres = await startEmbeddedPostgres(config.dataDir);
  // PGlite runs one session, and the socket server interleaves the protocol messages of several
  // connections (unnamed portals collide), so the pool keeps exactly one connection.
  const sql = connect(embedded.url, EMBEDDED_POOL_MAX);
  return {
    sql,
    kind: 'embedded',
    close: async () => {
      await sql.end({ timeout: 5 });
      await embedded.stop();
    },
  };
}

/** Runs `fn` in a transaction, or inside the caller's transaction when `db` already is one. */
export function inTransaction<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  if ('savepoint' in db) return fn(db);
  return pipelinedTransaction(db, fn);
}

/**
 * A transaction whose BEGIN travels with its first statement, a round trip fewer than
 * `sql.begin` (which waits for BEGIN's answer). Should BEGIN fail, so does every statement
 * behind it on the connection, so nothing runs outside the transaction. Any error rolls back.
 */
async function pipelinedTransaction<T>(sql: Sql, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const connection = await sql.reserve();
  const tx = Object.assign(connection, { savepoint: savepointOn(connection) }) as unknown as Tx;
  try {
    const begun = connection`begin`.execute();
    begun.catch(() => {}); // awaited below; a failure also fails the statements behind it
    const result = await fn(tx);
    await begun;
    // A statement that failed but whose error `fn` caught (or never awaited) aborted the
    // transaction: PostgreSQL then answers COMMIT with ROLLBACK, which must not pass for success.
    const committed = await connection`commit`;
    if (committed.command === 'ROLLBACK')
      throw new Error('the transaction was rolled back: one of its statements failed');
    return result;
  } catch (error) {
    await connection`rollback`.catch(() => {});
    throw error;
  } finally {
    connection.release();
  }
}

function savepointOn(connection: postgres.ReservedSql): Tx['savepoint'] {
  let count = 0;
  return (async (fn: (sp: Tx) => unknown) => {
    const name = connection(`s${++count}`);
    await connection`savepoint ${name}`;
    try {
      const result = await fn(connection as unknown as Tx);
      await connection`release savepoint ${name}`;
      return result;
    } catch (error) {
      await connection`rollback to savepoint ${name}`;
      throw error;
    }
  }) as Tx['savepoint'];
}

/** The first row of a statement that always returns one (INSERT … RETURNING, an upsert). */
export function firstRow<T>(rows: readonly T[]): T {
  const row = rows[0];
  if (row === undefined) throw new Error('expected the statement to return a row');
  return row;
}
