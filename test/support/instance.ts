import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { TEST_SERVER_SECRET } from './context.ts';

/** An orgsync process (`src/main.ts`) started by a test, on 127.0.0.1 and a port of its own. */
export interface Instance {
  url: string;
  child: ChildProcess;
  /** Its JSON log lines so far. */
  logs: Record<string, unknown>[];
  /** SIGTERM (graceful shutdown), resolved when it has exited. */
  stop(): Promise<void>;
  /** SIGKILL: a crash, nothing finishes. */
  kill(): Promise<void>;
}

/** Starts orgsync with `env` on top of a test configuration; resolves once it listens. */
export async function startInstance(env: Record<string, string>): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: {
      PATH: process.env.PATH,
      SERVER_SECRET: TEST_SERVER_SECRET,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      DEMO_ORGANIZATION: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += String(chunk)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'orgsync listening') resolve(String(entry.url));
    });
    void exited.then(() =>
      reject(new Error(`orgsync exited before listening:\n${stderr}${logs.map((l) => JSON.stringify(l)).join('\n')}`)),
    );
  });
  const signal = async (name: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
    await exited;
  };
  return { url, child, logs, stop: () => signal('SIGTERM'), kill: () => signal('SIGKILL') };
}
