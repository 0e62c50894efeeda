import net from 'node:net';
import { connect, type ConnectOptions, type Sql } from '../../src/storage/database.ts';

export interface TcpProxy {
  port: number;
  /** Connections made through the proxy so far (each is a new upstream connection). */
  connections(): number;
  /** Resets every open connection and refuses new ones (reset on accept) until `restore`. */
  cut(): void;
  restore(): void;
  /**
   * Drops the line at the next client message holding `text`: with `answer: 'lost'` the message
   * reaches the server (which then sees the line end, after it) but its answer never comes back;
   * with `answer: 'never sent'` it does not reach the server at all. Answers when it has happened.
   */
  dropAt(text: string, answer: 'lost' | 'never sent'): Promise<void>;
  close(): Promise<void>;
}

/**
 * A TCP proxy on loopback in front of `target`: what a load balancer, a connection pooler or a
 * database failover looks like to a client, with a switch to cut the line.
 */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  let made = 0;
  let cut = false;
  let drop: { text: string; answer: 'lost' | 'never sent'; done: () => void } | null = null;

  const server = net.createServer((client) => {
    if (cut) return void client.resetAndDestroy();
    made++;
    const upstream = net.connect(target.port, target.host);
    const pair = [client, upstream];
    let serverFinishing = false;
    for (const socket of pair) {
      open.add(socket);
      socket.on('error', () => {}); // a reset on one side ends the pair (below), nothing more
      socket.on('close', () => {
        open.delete(socket);
        if (socket === client && serverFinishing) return; // the server reads up to the end first
        for (const other of pair) if (!other.destroyed) other.resetAndDestroy();
      });
    }
    client.on('data', (chunk: Buffer) => {
      if (drop && chunk.includes(drop.text)) {
        const { answer, done } = drop;
        drop = null;
        upstream.unpipe(client);
        upstream.resume(); // what the server still says goes nowhere
        // Ended, not reset: the server reads what came before the end, this message included.
        serverFinishing = answer === 'lost';
        if (serverFinishing) upstream.end(chunk);
        else upstream.resetAndDestroy();
        client.resetAndDestroy();
        return done();
      }
      if (!upstream.write(chunk)) client.pause();
    });
    client.on('end', () => upstream.end());
    upstream.on('drain', () => client.resume());
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;

  const cutLine = () => {
    cut = true;
    for (const socket of open) socket.resetAndDestroy();
  };
  return {
    port,
    connections: () => made,
    cut: cutLine,
    restore() {
      cut = false;
    },
    dropAt: (text, answer) => new Promise<void>((done) => (drop = { text, answer, done })),
    async close() {
      cutLine();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A pool of `max` connections to the PostgreSQL database at `url`, through a TcpProxy of its own. */
export async function poolThroughProxy(
  url: string,
  max: number,
  options: ConnectOptions = {},
): Promise<{ proxy: TcpProxy; sql: Sql; close: () => Promise<void> }> {
  const target = new URL(url);
  const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  const throughProxy = new URL(url);
  throughProxy.host = `127.0.0.1:${proxy.port}`;
  const sql = connect(throughProxy.toString(), max, options);
  const close = async () => {
    await sql.end({ timeout: 1 });
    await proxy.close();
  };
  return { proxy, sql, close };
}
