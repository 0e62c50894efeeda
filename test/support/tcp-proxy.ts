import net from 'node:net';

export interface TcpProxy {
  port: number;
  /** Connections made through the proxy so far (each is a new upstream connection). */
  connections(): number;
  /** Resets every open connection and refuses new ones (reset on accept) until `restore`. */
  cut(): void;
  restore(): void;
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

  const server = net.createServer((client) => {
    if (cut) return void client.resetAndDestroy();
    made++;
    const upstream = net.connect(target.port, target.host);
    const pair = [client, upstream];
    for (const socket of pair) {
      open.add(socket);
      socket.on('error', () => {}); // a reset on one side ends the pair (below), nothing more
      socket.on('close', () => {
        open.delete(socket);
        for (const other of pair) if (!other.destroyed) other.resetAndDestroy();
      });
    }
    client.pipe(upstream);
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
    async close() {
      cutLine();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
