import fs from 'node:fs';
import crypto from 'node:crypto';
import postgres from 'postgres';
import { connect, type Sql } from '../src/storage/database.ts';
import { migrate } from '../src/storage/migrate.ts';
import { systemActor } from '../src/core/actor.ts';
import { issueCredential } from '../src/core/credentials.ts';
import { createOrganization } from '../src/core/organizations.ts';

/** The server secret of the orgsync processes a benchmark starts. */
export const BENCH_SECRET = 'bench-server-secret-0123456789abcdefghijklmnop';

/** The benchmark's organization, with a SCIM token for the load. */
export async function benchOrganization(sql: Sql) {
  const actor = systemActor('cli');
  const { organization } = await createOrganization(
    sql,
    { name: 'Bench', slug: 'bench', ownerEmail: 'owner@bench.test' },
    actor,
  );
  const token = await issueCredential(
    sql,
    BENCH_SECRET,
    { organizationId: organization.id, kind: 'scim', name: 'bench' },
    actor,
  );
  return { organization, token };
}

/** A fresh migrated database on the PostgreSQL of DATABASE_URL (default: the local one), dropped by `drop`. */
export async function benchDatabase(): Promise<{ sql: Sql; url: string; drop(): Promise<void> }> {
  const base = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const name = `orgsync_bench_${crypto.randomBytes(4).toString('hex')}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  const sql = connect(url.toString(), 20);
  await migrate(sql);
  return {
    sql,
    url: url.toString(),
    drop: async () => {
      await sql.end();
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

/** Runs `fn`, reporting wall time and the peak RSS / heap growth seen while it ran. */
export async function measure<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; ms: number; peakRssMb: number; heapGrowthMb: number }> {
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let peakRss = process.memoryUsage().rss;
  let peakHeap = heapBefore;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  }, 20);
  const started = performance.now();
  try {
    const result = await fn();
    return {
      result,
      ms: Math.round(performance.now() - started),
      peakRssMb: Math.round(peakRss / 2 ** 20),
      heapGrowthMb: Math.round((peakHeap - heapBefore) / 2 ** 20),
    };
  } finally {
    clearInterval(sampler);
  }
}

/** CPU time (user + system) a process has used so far, in ms, from /proc (Linux). */
export function processCpuMs(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of the whole line (11 and 12 after the command).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** Resident memory of a process now, in MB, from /proc (Linux). */
export function processRssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}

const CLOCK_TICKS_PER_SECOND = 100;
