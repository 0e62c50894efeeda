import fs from 'node:fs';

export interface ChromiumBinary {
  executablePath: string;
  /** Flags the binary needs beyond Playwright's own. */
  args: string[];
  /** Where it comes from, for messages. */
  source: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    chromium: ChromiumBinary;
  }
}

const isExecutableFile = (file: string) => {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
};

/**
 * @sparticuz/chromium's flags left out: two would change what the tests check (same-origin
 * policy, mixed content), and the single-process model is for AWS Lambda (slower here, where
 * Chromium's usual process model works). The rest let its headless shell run as root.
 */
const LEFT_OUT_FLAGS = new Set(['--disable-web-security', '--allow-running-insecure-content', '--single-process']);

/**
 * The system Chromium (CHROMIUM_PATH, else /usr/bin/chromium) when there is one, else the headless
 * Chromium the npm package @sparticuz/chromium ships (unpacked into the temporary directory once).
 */
export async function findChromium(): Promise<ChromiumBinary> {
  const system = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (isExecutableFile(system)) return { executablePath: system, args: [], source: system };
  if (process.env.CHROMIUM_PATH) throw new Error(`CHROMIUM_PATH=${system} is not an executable file`);
  const { default: packaged } = await import('@sparticuz/chromium');
  return {
    executablePath: await packaged.executablePath(),
    args: packaged.args.filter((flag) => !LEFT_OUT_FLAGS.has(flag)),
    source: '@sparticuz/chromium',
  };
}
