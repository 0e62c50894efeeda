/**
 * Concurrent identical reads share one statement: a read asked for while the same one (same key)
 * is in flight gets that one's answer, and the next read after it settles runs anew. Nothing is
 * kept beyond the statement in flight, so no answer is older than a read that started after the
 * caller arrived would be by more than that one round trip. The answer is shared: callers must
 * not change it.
 */
export function singleFlight<T>(): (key: string, read: () => Promise<T>) => Promise<T> {
  const inFlight = new Map<string, Promise<T>>();
  return (key, read) => {
    const running = inFlight.get(key);
    if (running) return running;
    const started = read().finally(() => inFlight.delete(key));
    inFlight.set(key, started);
    return started;
  };
}
