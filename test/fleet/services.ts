import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';

/**
 * Debian's PgBouncer and HAProxy (`.ci/apt-packages`), started by the fleet test on free loopback
 * ports with generated configurations, and stopped by it.
 */

export interface Service {
  url: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function workDir(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `orgsync-${name}-`));
  // PgBouncer drops root privileges (-u postgres) and must still read its files.
  fs.chmodSync(dir, 0o755);
  return dir;
}

function run(
  command: string,
  args: string[],
  dir: string,
): { child: ChildProcess; output(): string; stop(): Promise<void> } {
  const log = fs.openSync(path.join(dir, 'out.log'), 'a');
  const child = spawn(command, args, { stdio: ['ignore', log, log] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    output: () => fs.readFileSync(path.join(dir, 'out.log'), 'utf8'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      fs.closeSync(log);
      // Kept for a failed run, beside the instances' logs.
      fs.mkdirSync('test-artifacts/fleet', { recursive: true });
      fs.copyFileSync(path.join(dir, 'out.log'), `test-artifacts/fleet/${path.basename(command)}.log`);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * PgBouncer in transaction mode in front of the PostgreSQL of `databaseUrl` (trust
 * authentication, as the local test server has), answering the same database name.
 */
export async function startPgbouncer(
  databaseUrl: string,
): Promise<Service & { show(what: string): Promise<unknown[]>; log(): string }> {
  const target = new URL(databaseUrl);
  const port = await freePort();
  const dir = workDir('pgbouncer');
  const user = decodeURIComponent(target.username || 'postgres');
  fs.writeFileSync(path.join(dir, 'userlist.txt'), `"${user}" ""\n`, { mode: 0o644 });
  fs.writeFileSync(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${target.hostname} port=${target.port || 5432}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      'max_client_conn = 500',
      'default_pool_size = 20',
      'server_reset_query =',
      `admin_users = ${user}`,
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const asRoot = process.getuid?.() === 0 ? ['-u', 'postgres'] : [];
  const proc = run('/usr/sbin/pgbouncer', [...asRoot, path.join(dir, 'pgbouncer.ini')], dir);
  const url = new URL(databaseUrl);
  url.host = `127.0.0.1:${port}`;
  const probe = postgres(url.toString(), { max: 1, prepare: false, onnotice: () => {} });
  try {
    await until(
      async () =>
        await probe`select 1 as ok`.then(
          () => true,
          () => false,
        ),
      'PgBouncer accepts',
      proc.child,
    );
  } finally {
    await probe.end();
  }
  const admin = new URL(url);
  admin.pathname = '/pgbouncer';
  const show = async (what: string) => {
    const console = postgres(admin.toString(), { max: 1, prepare: false, onnotice: () => {}, fetch_types: false });
    try {
      return [...(await console.unsafe(`show ${what}`).simple())];
    } finally {
      await console.end();
    }
  };
  return { url: url.toString(), stop: () => proc.stop(), show, log: () => proc.output() };
}

/**
 * HAProxy on `port` balancing round-robin over `servers` (host:port), with /readyz health checks
 * and connection failures redispatched to another server.
 */
export async function startHaproxy(port: number, servers: string[]): Promise<Service & { stats(): Promise<string> }> {
  const dir = workDir('haproxy');
  const stats = path.join(dir, 'stats.sock');
  fs.writeFileSync(
    path.join(dir, 'haproxy.cfg'),
    [
      'global',
      '  maxconn 2000',
      `  stats socket ${stats} level admin`,
      '  log stdout format raw local0',
      'defaults',
      '  mode http',
      '  log global',
      '  option httplog',
      '  timeout connect 2s',
      '  timeout client 60s',
      '  timeout server 60s',
      // A slow answer under load is not a dead instance: only a refused or silent one is.
      '  timeout check 5s',
      '  retries 3',
      '  option redispatch 1',
      'frontend orgsync',
      `  bind 127.0.0.1:${port}`,
      '  option forwardfor',
      '  default_backend instances',
      'backend instances',
      '  balance roundrobin',
      '  option httpchk GET /readyz',
      '  http-check expect status 200',
      '  default-server inter 500ms fall 3 rise 1',
      ...servers.map((s, i) => `  server o${i + 1} ${s} check`),
      '',
    ].join('\n'),
  );
  const proc = run('/usr/sbin/haproxy', ['-db', '-f', path.join(dir, 'haproxy.cfg')], dir);
  const url = `http://127.0.0.1:${port}`;
  await until(
    async () =>
      await fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      ),
    'HAProxy answers',
    proc.child,
  );
  return {
    url,
    stop: () => proc.stop(),
    stats: () =>
      new Promise((resolve, reject) => {
        let out = '';
        const socket = net.createConnection(stats, () => socket.end('show stat\n'));
        socket.on('data', (d) => (out += String(d)));
        socket.on('end', () => resolve(out));
        socket.on('error', reject);
      }),
  };
}

/** Polls `condition` until it holds; fails after `ms` or as soon as `child` exits. */
export async function until(
  condition: () => Promise<boolean>,
  what: string,
  child?: ChildProcess,
  ms = 20_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (child && child.exitCode !== null) throw new Error(`${what}: the process exited (${child.exitCode})`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
