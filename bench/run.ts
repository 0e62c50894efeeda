import os from 'node:os';
import { benchAcs } from './acs.ts';
import { benchEtag } from './etag.ts';
import { benchBulk } from './bulk.ts';
import { benchMembers } from './members.ts';
import { benchOutbox } from './outbox.ts';
import { benchRoles } from './roles.ts';
import { benchScim } from './scim.ts';

/**
 * Runs every benchmark (or the one named: `npm run bench -- scim`) against the PostgreSQL of
 * DATABASE_URL and prints Markdown tables for bench/RESULTS.md.
 */
const benches: Record<string, { header: string; run: () => Promise<string[]> }> = {
  roles: { header: '| benchmark | time | memory |\n| --- | --- | --- |', run: benchRoles },
  scim: {
    header:
      '| workload | operations | rate | of the raw PostgreSQL ceiling | orgsync CPU per request |\n| --- | --- | --- | --- | --- |',
    run: benchScim,
  },
  bulk: {
    header: '| SCIM creates | time | rate | orgsync CPU per user | time vs the bulk |\n| --- | --- | --- | --- | --- |',
    run: benchBulk,
  },
  acs: {
    header: '| SAML ACS workload | rate or latency | latency | server |\n| --- | --- | --- | --- |',
    run: benchAcs,
  },
  etag: {
    header:
      '| member adds to one group, 16 in flight | without ETags (baseline) | with ETags | with ÷ without |\n| --- | --- | --- | --- |',
    run: benchEtag,
  },
  members: {
    header: '| members list, 100,000 members | answer | median | slowest of 7 |\n| --- | --- | --- | --- |',
    run: benchMembers,
  },
  outbox: {
    header:
      '| workload | events | insert to dispatch | insert to webhook delivered | cron overlap warnings | failed jobs |\n| --- | --- | --- | --- | --- | --- |',
    run: benchOutbox,
  },
};
const only = process.argv[2];

console.log(
  `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`,
);
for (const [name, bench] of Object.entries(benches)) {
  if (only && only !== name) continue;
  console.log(`\n${bench.header}`);
  for (const row of await bench.run()) console.log(row);
}
