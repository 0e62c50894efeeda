import { isDatabaseUnavailable } from './database.ts';

interface Waiting<T> {
  item: T;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: one write in flight at a time, and what arrives meanwhile goes together in the
 * next one (`write` gets the items in arrival order, at most `maxBatch` of them, and writes them
 * in one statement). A hundred concurrent writes then cost a few statements instead of a hundred
 * round trips, each of which costs the event loop system calls; one write alone goes at once.
 * Each caller's promise settles once its own item is committed, or fails as writing it alone
 * would: a batch that fails is written again item by item (so one bad item cannot fail its
 * neighbours), unless the database is out of reach, which fails them all as it would fail each.
 */
export function groupCommit<T>(write: (items: T[]) => Promise<void>, maxBatch = 256): (item: T) => Promise<void> {
  const queue: Waiting<T>[] = [];
  let writing = false;

  async function commit(batch: Waiting<T>[]): Promise<void> {
    try {
      await write(batch.map((w) => w.item));
      for (const w of batch) w.resolve();
    } catch (error) {
      if (batch.length === 1 || isDatabaseUnavailable(error)) for (const w of batch) w.reject(error);
      // One after the other, in arrival order.
      else for (const w of batch) await commit([w]);
    }
  }

  async function drain(): Promise<void> {
    writing = true;
    while (queue.length > 0) await commit(queue.splice(0, maxBatch));
    writing = false;
  }

  return (item) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      if (!writing) void drain();
    });
}
