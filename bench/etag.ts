import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bulkUsers, patch } from './scim.ts';
import { benchDatabase, benchOrganization, root, runTimed, scimCaller, startServer, stopServer } from './support.ts';

/**
 * What ETags cost concurrent member adds to one group (issue 13: at least 0.9× as fast as
 * without them). Two orgsync processes on the same PostgreSQL, each with its own database: the
 * baseline runs the code of BENCH_BASELINE_REF (default: the commit before migration 080 came,
 * that is before ETags; its database without migration 080), the other this checkout. Rounds alternate between
 * them so a shared machine's load falls on both alike. A third workload does what a careful
 * client does with ETags: read the group's ETag, PATCH with If-Match, and read again on 412.
 */
const ADDS = Number(process.env.BENCH_ETAG_ADDS ?? 3_000);
const ROUNDS = Number(process.env.BENCH_ETAG_ROUNDS ?? 3);
const IF_MATCH_ADDS = Number(process.env.BENCH_ETAG_IF_MATCH_ADDS ?? 300);

export async function benchEtag(): Promise<string[]> {
  const ref = process.env.BENCH_BASELINE_REF ?? beforeEtags();
  const baselineDir = checkout(ref);
  const servers: ChildProcess[] = [];
  const dbs: Awaited<ReturnType<typeof benchDatabase>>[] = [];
  try {
    const side = async (dir: string, withEtags: boolean) => {
      const db = await benchDatabase();
      dbs.push(db);
      if (!withEtags) await db.sql.unsafe(dropMigration080);
      const { organization, token } = await benchOrganization(db.sql);
      await bulkUsers(db.sql, organization.id, 0, ADDS);
      const ids = (await db.sql<{ accountId: string }[]>`select account_id from scim_users order by account_id`).map(
        (r) => r.accountId,
      );
      const started = await startServer(db.url, {}, undefined, dir);
      servers.push(started.child);
      return { call: scimCaller(started.port, token.secret), ids };
    };
    const baseline = await side(baselineDir, false);
    const current = await side(root, true);

    const rows: string[] = [];
    const ratios: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const before = await addsPerSecond(baseline, `Baseline ${round}`);
      const after = await addsPerSecond(current, `ETags ${round}`);
      ratios.push(after / before);
      rows.push(
        `| round ${round}: ${ADDS} PATCH adds to one group | ${Math.round(before)}/s | ${Math.round(after)}/s | ${(after / before).toFixed(2)} |`,
      );
    }
    rows.push(`| median of ${ROUNDS} rounds | | | ${median(ratios).toFixed(2)} |`);

    const checked = await ifMatchAdds(current);
    rows.push(
      `| ${IF_MATCH_ADDS} adds by GET + PATCH with If-Match (retried on 412) | | ${Math.round(checked.perSecond)}/s | ${checked.retries} retries (412) |`,
    );
    rows.push(`| baseline: ${ref.slice(0, 10)}; load average at the end ${os.loadavg()[0]!.toFixed(1)} | | | |`);
    return rows;
  } finally {
    await Promise.all(servers.map(stopServer));
    for (const db of dbs) await db.drop();
    fs.rmSync(baselineDir, { recursive: true, force: true });
  }
}

type Side = { call: ReturnType<typeof scimCaller>; ids: string[] };

/** ADDS member adds (one member per PATCH, as Okta and Entra send them) to a new group. */
async function addsPerSecond(side: Side, name: string): Promise<number> {
  const group = await side.call('POST', '/Groups', { displayName: name });
  const id = (group.body as { id: string }).id;
  const times = await runTimed(ADDS, async (i) => {
    const res = await side.call(
      'PATCH',
      `/Groups/${id}`,
      patch([{ op: 'add', path: 'members', value: [{ value: side.ids[i] }] }]),
    );
    if (res.status !== 204) throw new Error(`PATCH: ${res.status}`);
  });
  return (ADDS * 1000) / (Math.max(...times) - times[0]!);
}

/** Adds made safely: each reads the group's ETag and sends it in If-Match; a 412 reads again. */
async function ifMatchAdds(side: Side): Promise<{ perSecond: number; retries: number }> {
  const id = ((await side.call('POST', '/Groups', { displayName: 'If-Match' })).body as { id: string }).id;
  let retries = 0;
  const times = await runTimed(IF_MATCH_ADDS, async (i) => {
    for (;;) {
      const { etag } = await side.call('GET', `/Groups/${id}?excludedAttributes=members`);
      const res = await side.call(
        'PATCH',
        `/Groups/${id}`,
        patch([{ op: 'add', path: 'members', value: [{ value: side.ids[i] }] }]),
        { 'if-match': etag! },
      );
      if (res.status === 204) return;
      if (res.status !== 412) throw new Error(`PATCH: ${res.status}`);
      retries++;
    }
  });
  return { perSecond: (IF_MATCH_ADDS * 1000) / (Math.max(...times) - times[0]!), retries };
}

/** The baseline's database is this one's without migration 080 (the baseline does not know it). */
const dropMigration080 = `
  drop trigger group_members_added on group_members;
  drop trigger group_members_removed on group_members;
  drop function orgsync_count_member_changes();
  drop table group_member_versions;`;

/** The baseline's code in a temporary directory, sharing this checkout's node_modules. */
function checkout(ref: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orgsync-baseline-'));
  execFileSync('sh', ['-c', `git -C "${root}" archive "${ref}" | tar -x -C "${dir}"`]);
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

/** The commit before the one that added migration 080 (ETags). */
function beforeEtags(): string {
  const added = git(
    'log',
    '--diff-filter=A',
    '--format=%H',
    '--',
    'src/storage/migrations/080_group_member_versions.sql',
  );
  return git('rev-parse', `${added.split('\n').pop()}^`);
}

function git(...args: string[]): string {
  return execFileSync('git', ['-C', root, ...args])
    .toString()
    .trim();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
