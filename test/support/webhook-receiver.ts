import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedWebhook {
  eventId: string;
  signature: string;
  body: string;
  status: number;
}

/**
 * A real HTTP server on loopback that records webhook posts. `mode` decides each answer:
 * 'ok' (204), 'fail' (500), 'redirect' (302 to another path of its own) or 'hang' (never answers;
 * the request is recorded as status 0). `hosts` are the Host headers received.
 */
export async function startWebhookReceiver() {
  const received: ReceivedWebhook[] = [];
  const hanging = new Set<http.ServerResponse>();
  const hosts: string[] = [];
  let mode: 'ok' | 'fail' | 'redirect' | 'hang' = 'ok';
  const concurrency = { open: 0, max: 0 };
  const server = http.createServer((req, res) => {
    concurrency.open += 1;
    concurrency.max = Math.max(concurrency.max, concurrency.open);
    res.on('close', () => (concurrency.open -= 1));
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      hosts.push(String(req.headers.host));
      const entry = {
        eventId: String(req.headers['orgsync-event-id']),
        signature: String(req.headers['orgsync-signature']),
        body,
        status: 0,
      };
      received.push(entry);
      if (mode === 'hang') {
        hanging.add(res);
        return;
      }
      entry.status = { ok: 204, fail: 500, redirect: 302 }[mode];
      res.writeHead(entry.status, mode === 'redirect' ? { location: '/elsewhere' } : {}).end();
    });
  });
  let connections = 0;
  server.on('connection', () => (connections += 1));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    port,
    received,
    hosts,
    /** Requests not answered yet, now and at most. */
    concurrency,
    /** TCP connections accepted so far. */
    connections: () => connections,
    /** Event ids answered with 2xx. */
    delivered: () => received.filter((r) => r.status === 204).map((r) => r.eventId),
    setMode: (m: typeof mode) => (mode = m),
    close: async () => {
      hanging.forEach((res) => res.destroy());
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
