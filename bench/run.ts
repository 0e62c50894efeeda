import os from 'node:os';
import { benchRoles } from './roles.ts';

/** Runs every benchmark against the PostgreSQL of DATABASE_URL and prints Markdown rows for bench/RESULTS.md. */
const benches: Record<string, () => Promise<string[]>> = { roles: benchRoles };
const only = process.argv[2];

console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`);
console.log('| benchmark | time | memory |\n| --- | --- | --- |');
for (const [name, run] of Object.entries(benches)) {
  if (only && only !== name) continue;
  for (const row of await run()) console.log(row);
}
