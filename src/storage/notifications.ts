import postgres from 'postgres';

/**
 * PostgreSQL LISTEN/NOTIFY between the orgsync instances on one database, for anything an
 * instance keeps in memory that another instance can make stale (cached credentials) or that it
 * should act on soon. A writer sends with `pg_notify` in its own transaction, so the others hear
 * of a change once it has committed. Every listener shares one dedicated session (not a pooled
 * connection: through PgBouncer in transaction mode a LISTEN would land on a server connection
 * that other clients then use).
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
