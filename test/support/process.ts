import { spawn } from 'node:child_process';
import { TEST_SERVER_SECRET } from './context.ts';

export interface OrgsyncProcess {
  /** The base URL the process listens on. */
  url: string;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Its exit code, or null while it runs. */
  exitCode(): number | null;
  /** SIGTERM, then waits for the exit; answers the exit code (or the signal that ended it). */
  stop(): Promise<number | string | null>;
}

/**
 * orgsync as a process of its own, from the sources (`node --import tsx src/main.ts`; production
 * runs the same code built, which CI starts too), on loopback with a port of its own; `env` adds or
 * overrides configuration variables.
 */
export async function startOrgsyncProcess(env: Record<string, string>): Promise<OrgsyncProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: {
      PATH: process.env.PATH,
      SERVER_SECRET: TEST_SERVER_SECRET,
      PORT: '0',
      PUBLIC_URL: 'https://orgsync.test',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  // The exit code, or the signal that ended the process (so a failing assertion names it).
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const check = () => {
      const match = /"url":"(http:\/\/[^"]+)".*orgsync listening/.exec(output);
      if (match) resolve(match[1]!);
    };
    child.stdout.on('data', check);
    void exited.then((code) => reject(new Error(`orgsync exited (${code}):\n${output}`)));
  });
  return {
    url,
    output: () => output,
    exitCode: () => child.exitCode,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Polls `check` until it holds, failing after `ms` with `describe()` in the message. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  ms: number,
  describe: () => string,
): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting: ${describe()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
