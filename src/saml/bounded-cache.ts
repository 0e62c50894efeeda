/**
 * Keeps `value` under `key` in `cache` and answers it; when the cache holds `limit` entries the
 * oldest goes first, so a cache of things built per connection or certificate stays bounded.
 */
export function remember<K, V>(cache: Map<K, V>, key: K, value: V, limit: number): V {
  cache.delete(key);
  if (cache.size >= limit) cache.delete(cache.keys().next().value!);
  cache.set(key, value);
  return value;
}
