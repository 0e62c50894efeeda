import { inTransaction, isConflictLost, isDatabaseUnavailable, type Sql, type Tx } from './database.ts';

/** A write: given the pool, or the shared transaction (which takes the same statements). */
type Write<T> = (db: Sql) => Promise<T>;

interface Waiting<T> {
  write: Write<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

interface Queue {
  waiting: Waiting<unknown>[];
  /** The lanes (0 … inFlight - 1) of the key's batches running now (a batch may be a single write). */
  running: Set<number>;
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Runs of a write alone, the first included, while it loses conflicts with other transactions. */
const CONFLICT_RUNS = 3;

export interface SharedTransactionOptions {
  /**
   * Run first in each shared transaction (a lock its writes need), given the writes' key and the
   * batch's lane: no other batch of the key running at the same time has the same lane.
   */
  open?: (tx: Tx, key: string, lane: number) => Promise<unknown>;
  /** An error that is a write's answer (a refusal), not the loss of the transaction it ran in. */
  isAnswer: (error: unknown) => boolean;
  /** Writes one transaction takes at most. */
  maxBatch?: number;
  /**
   * Batches of one key running at once. With two, one batch's statements run while the other's
   * commit is flushed (or, where `open` takes a lock they share, they are at the database already
   * when it is released).
   */
  inFlight?: number;
}

/**
 * Group commit of whole writes. A write runs at once, on its own, as it would without this, unless
 * `inFlight` batches of its key are running: then it waits, and those that waited run next
 * together, in one transaction that `open` starts, their statements sent in one go (pipelined)
 * and committed once. Under a burst that is one commit, one wake-up of the database and one round
 * trip for many writes.
 *
 * Each write answers as it would have alone, once the transaction it ran in has committed. A
 * write that fails with anything but an answer (`isAnswer`) has lost the transaction for all
 * of them, and so has a statement that failed even if its write went on (PostgreSQL then fails
 * the statements after it, and answers COMMIT with ROLLBACK): the transaction is rolled back and
 * each write runs again on its own, in arrival order, so one write's failure never fails its
 * neighbours. A write can tell it shares a transaction by the savepoint method its `db` then has.
 * Only a database out of reach fails them all, as it would have failed each. A write alone that
 * lost a deadlock or a serialization conflict runs again (alone).
 */
export function sharedTransactions(options: SharedTransactionOptions) {
  const { open, isAnswer, maxBatch = 50, inFlight = 2 } = options;
  const queues = new WeakMap<Sql, Map<string, Queue>>();

  const settle = <T>(write: Promise<T>): Promise<Settled<T>> =>
    write.then(
      (value) => ({ ok: true, value }),
      (error: unknown) => ({ ok: false, error }),
    );
  const answer = <T>(waiting: Waiting<T>, settled: Settled<T>) =>
    settled.ok ? waiting.resolve(settled.value) : waiting.reject(settled.error);

  /**
   * Runs a write on its own. One that lost a deadlock or a serialization conflict committed
   * nothing (a write commits once, at its end) and runs again, up to CONFLICT_RUNS times in all.
   */
  async function alone<T>(sql: Sql, waiting: Waiting<T>): Promise<void> {
    let settled = await settle(waiting.write(sql));
    for (let run = 1; run < CONFLICT_RUNS && !settled.ok && isConflictLost(settled.error); run++) {
      settled = await settle(waiting.write(sql));
    }
    answer(waiting, settled);
  }

  async function together(sql: Sql, key: string, lane: number, batch: Waiting<unknown>[]): Promise<void> {
    let outcomes: Settled<unknown>[] = [];
    try {
      await inTransaction(sql, async (tx) => {
        const opened = open?.(tx, key, lane);
        opened?.catch(() => {}); // awaited below; its failure fails the writes sent behind it
        outcomes = await Promise.all(batch.map((w) => settle(w.write(tx as unknown as Sql))));
        await opened;
        const lost = outcomes.find((s) => !s.ok && !isAnswer(s.error));
        if (lost) throw (lost as { error: unknown }).error;
      });
    } catch (error) {
      // Rolled back (a statement or the commit failed): none of them happened.
      if (isDatabaseUnavailable(error)) for (const w of batch) w.reject(error);
      else for (const w of batch) await alone(sql, w);
      return;
    }
    batch.forEach((w, i) => answer(w, outcomes[i]!));
  }

  /** Starts the next batches of `key`, while fewer than `inFlight` of them run. */
  function pump(sql: Sql, queue: Map<string, Queue>, key: string): void {
    const q = queue.get(key)!;
    while (q.running.size < inFlight && q.waiting.length > 0) {
      const batch = q.waiting.splice(0, maxBatch);
      let lane = 0;
      while (q.running.has(lane)) lane++;
      q.running.add(lane);
      void (batch.length === 1 ? alone(sql, batch[0]!) : together(sql, key, lane, batch)).finally(() => {
        q.running.delete(lane);
        if (q.running.size === 0 && q.waiting.length === 0) queue.delete(key);
        else pump(sql, queue, key);
      });
    }
  }

  /** Runs `write` (on the pool, or in a shared transaction) and answers what it answers. */
  return function write<T>(sql: Sql, key: string, write: Write<T>): Promise<T> {
    let queue = queues.get(sql);
    if (!queue) queues.set(sql, (queue = new Map<string, Queue>()));
    let q = queue.get(key);
    if (!q) queue.set(key, (q = { waiting: [], running: new Set<number>() }));
    return new Promise<T>((resolve, reject) => {
      q.waiting.push({ write, resolve, reject } as Waiting<unknown>);
      pump(sql, queue, key);
    });
  };
}
