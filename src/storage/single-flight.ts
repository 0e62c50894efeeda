/**
 * Concurrent identical reads share one statement: a read asked for while the same one (same key)
 * is in flight gets that one's answer, and the first asked after it is answered runs anew. Nothing
 * is kept once a read is answered, so an answer is at most one round trip older than the caller's
 * own read would have been. The answer is shared: callers must not change it.
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
