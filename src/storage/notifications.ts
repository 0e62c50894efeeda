import postgres from 'postgres';
import type { Db } from './database.ts';

/**
 * PostgreSQL LISTEN/NOTIFY between the orgsync instances on one database, for anything an
 * instance keeps in memory that another instance can make stale (cached credentials) or that it
 * should act on soon. Every listener shares one dedicated session (not a pooled connection:
 * through PgBouncer in transaction mode a LISTEN would land on a server connection that other
 * clients then use).
 */
export interface Notifications {
  /**
   * Calls `onNotify` with each payload sent on `channel`. `onListening` runs whenever the listen
   * is (re)established: after a lost connection notifications may have been missed, so whatever
   * they keep fresh should start over then. Resolves once listening.
   */
  listen(channel: string, onNotify: (payload: string) => void, onListening?: () => void): Promise<void>;
  close(): Promise<void>;
}

export function openNotifications(url: string): Notifications {
  // postgres.js reconnects the listening session by itself and listens again on every channel.
  const sql = postgres(url, { max: 1, onnotice: () => {}, connection: { application_name: 'orgsync-listen' } });
  return {
    async listen(channel, onNotify, onListening) {
      await sql.listen(channel, onNotify, onListening);
    },
    close: () => sql.end({ timeout: 5 }),
  };
}

/** Sends `payload` on `channel`: when `db`'s transaction commits, or at once outside one. */
export async function notify(db: Db, channel: string, payload: string): Promise<void> {
  await db`select pg_notify(${channel}, ${payload})`;
}
