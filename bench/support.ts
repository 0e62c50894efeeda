import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { connect, type Sql } from '../src/storage/database.ts';
import { migrate } from '../src/storage/migrate.ts';
import { systemActor } from '../src/core/actor.ts';
import { issueCredential } from '../src/core/credentials.ts';
import { createOrganization } from '../src/core/organizations.ts';

/** The server secret of the orgsync processes a benchmark starts. */
export const BENCH_SECRET = 'bench-server-secret-0123456789abcdefghijklmnop';
/** Requests a workload keeps in flight. */
export const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
/** This checkout. */
export const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

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

/**
 * Starts orgsync on DATABASE_URL with the settings it ships with (its connection pool too, as the
 * peer bench runs it), bar logging, the reconciler and the SCIM rate limit; `env` overrides
 * them, `onLog` gets its stdout (JSON log lines).
 */
export async function startServer(
  databaseUrl: string,
  env: Record<string, string> = {},
  onLog?: (line: string) => void,
  cwd = root,
): Promise<{ child: ChildProcess; port: number }> {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  // BENCH_PROFILE_DIR: the orgsync process writes a CPU profile there when it exits.
  const profile = process.env.BENCH_PROFILE_DIR
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`]
    : [];
  // BENCH_BUILT=1: the build (npm run build first) instead of the sources through tsx.
  const entry = process.env.BENCH_BUILT === '1' ? ['dist/main.js'] : ['--import', 'tsx', 'src/main.ts'];
  // BENCH_NODE_ARGS: more options for the orgsync process's node (say, V8 flags to compare).
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...profile, ...nodeArgs, ...entry], {
    cwd,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      SERVER_SECRET: BENCH_SECRET,
      PORT: String(port),
      LOG_LEVEL: 'warn',
      RECONCILER: 'false',
      SCIM_RATE_LIMIT: '0',
      NODE_ENV: 'production',
      ...env,
    },
    stdio: ['ignore', onLog ? 'pipe' : 'ignore', 'inherit'],
  });
  if (onLog) {
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (buffered + chunk.toString()).split('\n');
      buffered = lines.pop()!;
      lines.forEach(onLog);
    });
  }
  for (let i = 0; i < 600; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (res.ok) return { child, port };
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new Error('orgsync did not start');
}

/** Stops an orgsync process and waits for it to exit (its connections closed, a CPU profile written). */
export async function stopServer(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

export interface ScimAnswer {
  status: number;
  etag?: string;
  /** The JSON answered (its text when it is not JSON; undefined when empty). */
  body: unknown;
}

/** A SCIM client of an orgsync process on 127.0.0.1, keeping up to CONCURRENCY connections alive. */
export function scimCaller(port: number, token: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  return (method: string, urlPath: string, body?: unknown, headers: Record<string, string> = {}) =>
    new Promise<ScimAnswer>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path: `/scim/v2${urlPath}`,
          method,
          agent,
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/scim+json',
            ...(payload ? { 'content-length': Buffer.byteLength(payload) } : {}),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode!,
              etag: res.headers.etag,
              body: parsed(Buffer.concat(chunks).toString()),
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
}

/** A SCIM client answering the body of the status expected, and failing on any other. */
export function client(port: number, token: string) {
  const call = scimCaller(port, token);
  return async (method: string, urlPath: string, body: unknown, expected: number): Promise<unknown> => {
    const answer = await call(method, urlPath, body);
    if (answer.status !== expected)
      throw new Error(`${method} ${urlPath}: ${answer.status} ${JSON.stringify(answer.body)?.slice(0, 300)}`);
    return answer.body;
  };
}

function parsed(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Runs `count` operations with `concurrency` in flight; answers when it started, then when each
 * operation finished (to compare parts of the run).
 */
export async function runTimed(
  count: number,
  op: (i: number) => Promise<unknown>,
  concurrency = CONCURRENCY,
): Promise<number[]> {
  const finished = new Array<number>(count);
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) {
        await op(i);
        finished[i] = performance.now();
      }
    }),
  );
  finished.unshift(start);
  return finished;
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
  return cpuMsOf(`/proc/${pid}/stat`);
}

/**
 * CPU time of a process's main thread, its event loop (worker threads, GC helper threads and
 * libuv's pool left out), in ms: the thread whose id is the process's, from /proc (Linux).
 */
export function eventLoopCpuMs(pid: number): number {
  return cpuMsOf(`/proc/${pid}/task/${pid}/stat`);
}

function cpuMsOf(statFile: string): number {
  const fields = fs.readFileSync(statFile, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of the whole line (11 and 12 after the command).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** Resident memory of a process now, in MB, from /proc (Linux). */
export function processRssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}

const CLOCK_TICKS_PER_SECOND = 100;
