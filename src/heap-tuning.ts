import v8 from 'node:v8';

/**
 * Imported first by main.ts, before any other module runs: V8's allocation-site pretenuring off.
 *
 * V8 allocates an object literal straight in the old generation once most of its allocation
 * site's objects have survived a young-generation collection. A request's objects live for its
 * ~20 ms, but under load some of its sites crossed that line; their objects then die in the old
 * generation still pointing at the request's young objects, which the young-generation collector
 * must treat as live and so promotes (until the next full collection). Each pretenured request
 * made the next one's objects look long-lived: under 3,000 SCIM creates 17% of what was allocated
 * was promoted, against 7% with pretenuring off, and a create cost 0.68 ms of CPU against 0.59
 * (bench/RESULTS.md, 2026-12-03 20:20). The flag only changes where V8 places new objects.
 */
v8.setFlagsFromString('--no-allocation-site-pretenuring');
