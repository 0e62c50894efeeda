import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

/**
 * A real DNS server on 127.0.0.1 (UDP) for tests: answers TXT queries from a table the test
 * controls. Unknown names get NXDOMAIN; names marked failing get SERVFAIL.
 */
export interface TestDnsServer {
  /** For DNS_SERVERS. */
  server: string;
  publish(name: string, ...values: string[]): void;
  unpublish(name: string): void;
  failing(name: string, on?: boolean): void;
  /** Queries answered so far, by name. */
  queries: string[];
  close(): Promise<void>;
}

export async function startDnsServer(): Promise<TestDnsServer> {
  const records = new Map<string, string[]>();
  const failing = new Set<string>();
  const queries: string[] = [];
  const socket = dgram.createSocket('udp4');
  socket.on('message', (message, remote) => {
    const query = dnsPacket.decode(message);
    const question = query.questions?.[0];
    if (!question) return;
    const name = question.name.toLowerCase();
    queries.push(name);
    const values = records.get(name);
    const rcode = failing.has(name) ? 'SERVFAIL' : values ? 'NOERROR' : 'NXDOMAIN';
    const answers =
      rcode === 'NOERROR' && question.type === 'TXT'
        ? values!.map((data) => ({ type: 'TXT' as const, name: question.name, ttl: 60, data }))
        : [];
    const response = dnsPacket.encode({
      id: query.id,
      type: 'response',
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcodeFlag(rcode),
      questions: [question],
      answers,
    });
    socket.send(response, remote.port, remote.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  // A shared server must not keep a test worker alive.
  socket.unref();
  return {
    server: `127.0.0.1:${socket.address().port}`,
    publish: (name, ...values) => records.set(name.toLowerCase(), values),
    unpublish: (name) => records.delete(name.toLowerCase()),
    failing: (name, on = true) => (on ? failing.add(name.toLowerCase()) : failing.delete(name.toLowerCase())),
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** The RCODE lives in the low four bits of the flags. */
function rcodeFlag(rcode: 'NOERROR' | 'NXDOMAIN' | 'SERVFAIL'): number {
  return { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 }[rcode];
}
