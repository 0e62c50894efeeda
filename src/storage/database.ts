import { setTimeout } from 'node:timers/promises';
import postgres from 'postgres';
import type { Config } from '../config.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded.ts';
import { openNotifications, type Notifications } from './notifications.ts';
import { withStatements } from './statements.ts';

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;
/** Anything a query can run on: the pool or an open transaction. */
export type Db = Sql | Tx;
/** A piece of SQL with its parameters, to compose into a statement. */
export type Fragment = postgres.PendingQuery<postgres.Row[]>;

export interface Database {
  sql: Sql;
  kind: 'postgres' | 'embedded';
  /**
   * LISTEN/NOTIFY between the instances on this database, on a connection of its own. Absent for
   * the embedded database, which one process opens at a time.
   */
  notifications?: Notifications;
  /** Ends the pool (waiting for running queries) and stops the embedded server if there is one. */
  close(): Promise<void>;
}

export const EMBEDDED_POOL_MAX = 1;

export interface ConnectOptions {
  /**
   * Through PgBouncer in transaction mode consecutive statements may run on different server
   * connections, so none may rely on a named prepared statement: every query is sent unnamed.
   */
  pgbouncer?: boolean;
  /** Sees every statement sent (tests count round trips with it). */
  onQuery?: (query: string) => void;
}

/**
 * A pool on `url`. postgres.js is patched (patches/postgres+3.4.9.patch, applied by `npm ci`) so
 * that a connection lost under a reservation or transaction fails its queries, catchably,
 * instead of crashing the process or hanging; see isDatabaseUnavailable for what such failures
 * look like.
 */
export function connect(url: string, max: number, options: ConnectOptions = {}): Sql {
  const { onQuery } = options;
  const sql = postgres(url, {
    max,
    prepare: !options.pgbouncer,
    // postgres.js pipelines a query onto a busy connection when every connection is busy. PgBouncer
    // in transaction mode (1.18, Debian 12's) hands the server connection to another client at the
    // first ReadyForQuery outside a transaction, so the answer to the query behind it is dropped
    // ("got packet from server when not linked") and that query waits forever. One at a time, then.
    ...(options.pgbouncer ? { max_pipeline: 0 } : {}),
    ...(onQuery ? { debug: (_connection: number, query: string) => onQuery(query) } : {}),
    // A lost connection is reconnected after 50 ms, doubling up to 1 s (with jitter), not
    // postgres.js's default of up to 20 s: while the database is away queries fail within a
    // second (503), and the pool is whole again within a second of its return.
    backoff: (attempts: number) => Math.min(0.05 * 2 ** attempts, 1) * (0.5 + Math.random() / 2),
    onnotice: () => {},
    // Rows come back with camelCase keys; SQL stays snake_case.
    transform: { column: { from: postgres.toCamel } },
    connection: { application_name: 'orgsync' },
  });
  return withStatements(sql);
}

/** Codes of a connection that could not be made or was lost: the network's and postgres.js's own. */
const CONNECTION_LOST = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
]);

/** SQLSTATEs of a server that ends or refuses sessions for now (besides class 08, connection exception). */
const SERVER_UNAVAILABLE = new Set([
  '57P01', // admin_shutdown: shutdown, or pg_terminate_backend
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up, in recovery
  '53300', // too_many_connections
  '57014', // query_canceled: a statement_timeout a DBA set on the role or database
  '55P03', // lock_not_available: a lock_timeout, likewise
]);

/** SQLSTATEs of a transaction PostgreSQL rolled back to settle a conflict with another. */
const CONFLICT_LOST = new Set([
  '40P01', // deadlock_detected
  '40001', // serialization_failure
]);

/** Whether `error` says the transaction lost a conflict with another and was rolled back whole. */
export function isConflictLost(error: unknown): boolean {
  return CONFLICT_LOST.has((error as { code?: unknown } | null)?.code as string);
}

/**
 * Whether `error` says the database is out of reach or too busy to answer in time (a failover, a
 * proxy restart, an idle-session timeout, terminated sessions, a server starting or full, a
 * database closed to new sessions, a statement or lock timeout) rather than anything about the
 * statement: the same request may well succeed a moment later.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const { code, severity } = (error ?? {}) as { code?: unknown; severity?: unknown };
  if (typeof code !== 'string') return false;
  return isSessionLost(error) || SERVER_UNAVAILABLE.has(code) || isDatabaseRefusingSessions(code, severity);
}

/**
 * Whether `error` ended the session it came on (the line lost, a connection exception, the server
 * shutting down or crashing): what was still to be answered on it is lost. One kind of unavailable.
 */
function isSessionLost(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return CONNECTION_LOST.has(code) || /^08[0-9A-Z]{3}$/.test(code) || code === '57P01' || code === '57P02';
}

/**
 * A database set to ALLOW_CONNECTIONS false (a maintenance step) refuses each new session with
 * 55000, object_not_in_prerequisite_state. Statements raise 55000 too (currval before nextval,
 * among many), at severity ERROR; the refusal ends the session, so its severity is FATAL. That is
 * the mark: `severity` (unlike `severity_local`) is never translated, and neither the message
 * (translated by lc_messages) nor `routine` (a C function's name: CheckMyDatabase on PostgreSQL 15)
 * is meant to be relied on.
 */
function isDatabaseRefusingSessions(code: string, severity: unknown): boolean {
  return code === '55000' && severity === 'FATAL';
}

/** Opens the configured PostgreSQL, or the embedded one in `config.dataDir` when no DATABASE_URL is set. */
export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'databasePoolMax' | 'dataDir' | 'databaseDirectUrl' | 'databasePgbouncer'>,
): Promise<Database> {
  if (config.databaseUrl) {
    const sql = connect(config.databaseUrl, config.databasePoolMax, { pgbouncer: config.databasePgbouncer });
    // LISTEN needs a session of its own: a transaction-mode pooler would hand it to others.
    const notifications = openNotifications(config.databaseDirectUrl ?? config.databaseUrl);
    return {
      sql,
      kind: 'postgres',
      notifications,
      close: async () => {
        await notifications.close();
        await sql.end({ timeout: 5 });
      },
    };
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

/** The closing statements (closingStatement) of each transaction inTransaction runs. */
const closingStatements = new WeakMap<Db, Promise<unknown>[]>();

/**
 * A statement that closes the transaction `tx` (an insert whose answer nothing in the transaction
 * waits for): started at once but not awaited by the transaction's function, it travels with the
 * COMMIT that follows, so a transaction's last writes and its COMMIT take one round trip. The
 * transaction waits for it before it succeeds; if it fails, the transaction fails with its error
 * (PostgreSQL has rolled it back). Answers the statement, to await once the transaction is over.
 * On anything but a transaction inTransaction started, it is an ordinary statement.
 */
export function closingStatement<T>(tx: Db, statement: Promise<T>): Promise<T> {
  const closing = closingStatements.get(tx);
  if (closing) {
    // Started now, ahead of the COMMIT: a postgres.js query is sent only once something awaits it.
    statement.catch(() => {}); // the transaction awaits it
    closing.push(statement);
  }
  return statement;
}

/**
 * A transaction whose BEGIN travels with its first statement, a round trip fewer than
 * `sql.begin` (which waits for BEGIN's answer), and whose COMMIT travels with its closing
 * statements. Should BEGIN fail, so does every statement behind it on the connection, so nothing
 * runs outside the transaction. Any error rolls back. Should the connection be lost with the
 * answer to its COMMIT, the transaction succeeds if the database says it committed
 * (committedAfterAll), and fails as unavailable if it did not.
 */
async function pipelinedTransaction<T>(sql: Sql, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const connection = await sql.reserve();
  const tx = Object.assign(connection, { savepoint: savepointOn(connection) }) as unknown as Tx;
  const closing: Promise<unknown>[] = [];
  closingStatements.set(tx, closing);
  try {
    const begun = connection`begin`.execute();
    begun.catch(() => {}); // awaited below; a failure also fails the statements behind it
    const result = await fn(tx);
    await begun;
    // Sent before the closing statements are awaited: in the same write as they, if `fn` started
    // them last (postgres.js sends what is asked in one turn of the event loop together). The
    // transaction's id travels with the COMMIT, for when the COMMIT's answer is lost.
    const id = connection<{ xid: string | null }[]>`select pg_current_xact_id_if_assigned()::text as xid`.execute();
    id.catch(() => {}); // read only if the COMMIT's answer is lost
    const commit = connection`commit`.execute();
    commit.catch(() => {}); // awaited below, after the closing statements (whose error says more)
    await Promise.all(closing);
    // A statement that failed but whose error `fn` caught (or never awaited) aborted the
    // transaction: PostgreSQL then answers COMMIT with ROLLBACK, which must not pass for success.
    const committed = await commit.catch(async (error: unknown) => {
      if (isSessionLost(error) && (await committedAfterAll(sql, id))) return null;
      throw error;
    });
    if (committed?.command === 'ROLLBACK')
      throw new Error('the transaction was rolled back: one of its statements failed');
    return result;
  } catch (error) {
    // A closing statement still unanswered fails or is rolled back with the transaction.
    await connection`rollback`.catch(() => {});
    throw error;
  } finally {
    closingStatements.delete(tx);
    connection.release();
  }
}

/** How long a transaction whose COMMIT's answer was lost asks the database whether it committed. */
const COMMIT_OUTCOME_MS = 10_000;

/**
 * Whether a transaction committed although the answer to its COMMIT was lost with the connection
 * (the server went away, or the line to it, after the COMMIT was sent): `id` answers its id, sent
 * just before the COMMIT. Answering "unavailable" for one that did commit would tell the caller a
 * change failed that happened. So ask, on a new connection, until the database knows (the old
 * session may still be ending: "in progress") or COMMIT_OUTCOME_MS has passed: false when it did
 * not commit, or when that cannot be learned in time (the caller then fails as before). After a
 * failover to an asynchronous standby that lost the transaction, the new primary may have given
 * its id to another, whose outcome this then reads: such a failover loses acknowledged writes too.
 */
async function committedAfterAll(sql: Sql, id: Promise<{ xid: string | null }[]>): Promise<boolean> {
  const xid = await id.then(
    ([row]) => row?.xid ?? null,
    () => null,
  );
  if (xid === null) return false; // unknown, or it wrote nothing
  const deadline = Date.now() + COMMIT_OUTCOME_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      const [row] = await sql<{ status: string | null }[]>`select pg_xact_status(${xid}::xid8) as status`;
      if (row?.status !== 'in progress') return row?.status === 'committed';
    } catch (error) {
      if (!isDatabaseUnavailable(error)) return false;
    }
    if (Date.now() >= deadline) return false;
    await setTimeout(Math.min(50 * 2 ** attempt, 1_000));
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
