import { describe, expect, it } from 'vitest';
import { groupCommit } from '../src/storage/group-commit.ts';
import { singleFlight } from '../src/storage/single-flight.ts';

/** The two helpers the SAML ACS shares work through, on plain functions (the ACS's tests use the database). */
describe('groupCommit', () => {
  it('writes the first item at once and what arrives meanwhile together, in order, in batches of at most maxBatch', async () => {
    const writes: number[][] = [];
    const commit = groupCommit((items: number[]) => {
      writes.push(items);
      return Promise.resolve();
    }, 4);
    await Promise.all(Array.from({ length: 10 }, (_, i) => commit(i)));
    expect(writes).toEqual([[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]);
    await commit(10);
    expect(writes.at(-1)).toEqual([10]);
  });

  it('settles each item as written alone when its batch fails', async () => {
    const written: string[] = [];
    const commit = groupCommit((items: string[]) => {
      if (items.includes('bad')) return Promise.reject(new Error(`cannot write ${items.join()}`));
      written.push(...items);
      return Promise.resolve();
    });
    const settled = await Promise.allSettled(['a', 'b', 'bad', 'c', 'd'].map(commit));
    expect(settled.map((s) => (s.status === 'fulfilled' ? 'ok' : (s.reason as Error).message))).toEqual([
      'ok',
      'ok',
      'cannot write bad',
      'ok',
      'ok',
    ]);
    expect(written).toEqual(['a', 'b', 'c', 'd']);
  });

  it('fails the whole batch at once when the database is out of reach', async () => {
    let calls = 0;
    const commit = groupCommit(() => {
      calls++;
      return Promise.reject(Object.assign(new Error('connection lost'), { code: 'ECONNRESET' }));
    });
    const settled = await Promise.allSettled(['a', 'b', 'c'].map(commit));
    expect(settled.every((s) => s.status === 'rejected')).toBe(true);
    expect(calls).toBe(2); // 'a' alone, then 'b' and 'c' together, not one by one
  });
});

describe('singleFlight', () => {
  it('shares a read in flight, errors included, and keeps nothing once it settles', async () => {
    let reads = 0;
    const shared = singleFlight<number>();
    const read =
      (fail = false) =>
      () => {
        reads++;
        return fail ? Promise.reject(new Error('failed')) : Promise.resolve(reads);
      };
    expect(await Promise.all([shared('k', read()), shared('k', read()), shared('other', read())])).toEqual([1, 1, 2]);
    expect(await shared('k', read())).toBe(3);
    const failing = await Promise.allSettled([shared('k', read(true)), shared('k', read())]);
    expect(failing.map((s) => s.status)).toEqual(['rejected', 'rejected']);
    expect(await shared('k', read())).toBe(5);
  });
});
