import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface EmbeddedPostgres {
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts PGlite (PostgreSQL compiled to WebAssembly) behind a loopback socket so the ordinary
 * `postgres` client talks to it: one SQL code path for embedded and real PostgreSQL.
 * `dataDir` of ':memory:' keeps nothing (tests).
 */
export async function startEmbeddedPostgres(dataDir: string): Promise<EmbeddedPostgres> {
  const inMemory = dataDir === ':memory:';
  let releaseLock = () => {};
  let pgDir: string | undefined;
  if (!inMemory) {
    fs.mkdirSync(dataDir, { recursive: true });
    releaseLock = lockDataDir(dataDir);
    pgDir = path.join(dataDir, 'pg');
  }
  try {
    const db = await PGlite.create(pgDir ? { dataDir: pgDir } : {});
    const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 8 });
    await server.start();
    const port = (server as unknown as { port: number }).port;
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      stop: async () => {
        await server.stop();
        await db.close();
        releaseLock();
      },
    };
  } catch (error) {
    releaseLock();
    throw error;
  }
}

/** PGlite must not be opened by two processes at once; a pid file makes the second one fail clearly. */
function lockDataDir(dataDir: string): () => void {
  const lockFile = path.join(dataDir, 'orgsync.pid');
  try {
    const holder = Number(fs.readFileSync(lockFile, 'utf8'));
    if (holder && holder !== process.pid && isAlive(holder)) {
      throw new Error(
        `the embedded database in ${path.resolve(dataDir)} is in use by process ${holder} ` +
          '(is `npm start` running?). Stop that process, or set DATABASE_URL to use PostgreSQL.',
      );
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  fs.writeFileSync(lockFile, String(process.pid));
  return () => fs.rmSync(lockFile, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
