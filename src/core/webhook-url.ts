import dns from 'node:dns/promises';
import net from 'node:net';
import { invalid } from './errors.ts';

/**
 * Which webhook URLs orgsync may call (against server-side request forgery: an organization admin
 * chooses the URL, orgsync's network sends to it). Checked when an endpoint is saved and again on
 * every delivery, which then connects to the very address checked here (no second DNS lookup a
 * rebinding name could answer differently).
 */

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to every address it has; injectable so tests can play a rebinding DNS. */
export type Resolve = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolve: Resolve = async (hostname) =>
  (await dns.lookup(hostname, { all: true, verbatim: true })).map(({ address, family }) => ({
    address,
    family: family === 6 ? 6 : 4,
  }));

export interface WebhookUrlPolicy {
  /** WEBHOOK_ALLOW_PRIVATE_NETWORKS: allow every range below (receivers on loopback in tests). */
  allowPrivateNetworks: boolean;
  resolve?: Resolve;
}

const blockList = (ranges: [string, number, string][], type: 'ipv4' | 'ipv6') => {
  const list = new net.BlockList();
  for (const [prefix, bits] of ranges) list.addSubnet(prefix, bits, type);
  return { list, ranges, type };
};

const IPV4 = blockList(
  [
    ['0.0.0.0', 8, '"this network"'],
    ['10.0.0.0', 8, 'private'],
    ['100.64.0.0', 10, 'carrier-grade NAT'],
    ['127.0.0.0', 8, 'loopback'],
    ['169.254.0.0', 16, 'link-local'],
    ['172.16.0.0', 12, 'private'],
    ['192.0.0.0', 24, 'IETF protocol assignments'],
    ['192.0.2.0', 24, 'documentation'],
    ['192.88.99.0', 24, '6to4 relay'],
    ['192.168.0.0', 16, 'private'],
    ['198.18.0.0', 15, 'benchmarking'],
    ['198.51.100.0', 24, 'documentation'],
    ['203.0.113.0', 24, 'documentation'],
    ['224.0.0.0', 4, 'multicast'],
    ['240.0.0.0', 4, 'reserved and broadcast'],
  ],
  'ipv4',
);

const IPV6 = blockList(
  [
    ['::', 128, 'unspecified'],
    ['::1', 128, 'loopback'],
    ['64:ff9b:1::', 48, 'local-use NAT64'],
    ['100::', 64, 'discard'],
    ['2001::', 23, 'IETF protocol assignments (Teredo, benchmarking, ORCHID)'],
    ['2001:db8::', 32, 'documentation'],
    ['3fff::', 20, 'documentation'],
    ['fc00::', 7, 'unique-local'],
    ['fe80::', 10, 'link-local'],
    ['fec0::', 10, 'site-local'],
    ['ff00::', 8, 'multicast'],
  ],
  'ipv6',
);

/**
 * IPv6 forms that carry an IPv4 address: reaching one reaches that IPv4 address, so that one is
 * checked. The deprecated IPv4-compatible form (`::7f00:1`) is refused whatever it carries.
 */
const EMBEDDING: { prefix: number[]; name: string; at: number; refused?: true }[] = [
  { prefix: [0, 0, 0, 0, 0, 0xffff], name: 'IPv4-mapped', at: 6 },
  { prefix: [0, 0, 0, 0, 0xffff, 0], name: 'IPv4-translated', at: 6 },
  { prefix: [0, 0, 0, 0, 0, 0], name: 'IPv4-compatible (deprecated)', at: 6, refused: true },
  { prefix: [0x64, 0xff9b, 0, 0, 0, 0], name: 'NAT64', at: 6 },
  { prefix: [0x2002], name: '6to4', at: 1 },
];

/** Why orgsync must not connect to this IP address, or null when it is a public one. */
export function addressRefusal(address: string): string | null {
  const family = net.isIP(address);
  if (family === 4) return rangeOf(IPV4, address);
  if (family !== 6) return `${address} is not an IP address`;
  const direct = rangeOf(IPV6, address);
  if (direct) return direct;
  const words = ipv6Words(address);
  const embedding = EMBEDDING.find(({ prefix }) => prefix.every((word, i) => words[i] === word));
  if (!embedding) return null;
  const { name, at, refused } = embedding;
  const v4 = `${words[at]! >> 8}.${words[at]! & 255}.${words[at + 1]! >> 8}.${words[at + 1]! & 255}`;
  if (refused) return `${address} (${name}, carrying ${v4})`;
  const inner = rangeOf(IPV4, v4);
  return inner && `${address} (${name} for ${inner})`;
}

function rangeOf(blocks: typeof IPV4, address: string): string | null {
  if (!blocks.list.check(address, blocks.type)) return null;
  const sub = new net.BlockList();
  for (const [prefix, bits, name] of blocks.ranges) {
    sub.addSubnet(prefix, bits, blocks.type);
    if (sub.check(address, blocks.type)) return `${address} (${name}, ${prefix}/${bits})`;
  }
  return address;
}

/** The eight 16-bit words of an IPv6 address (any notation net.isIP accepts, zone id dropped). */
function ipv6Words(address: string): number[] {
  let text = address.replace(/%.*$/, '').toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string | undefined) => (part ? part.split(':').map((w) => parseInt(w, 16)) : []);
  const left = parse(head);
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** Parses a webhook URL as saved: http(s), no credentials in it. */
export function parseWebhookUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(`not a URL: ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid('a webhook URL must be http(s)');
  if (url.username || url.password) throw invalid('a webhook URL must not carry credentials');
  return url;
}

/** What a checked URL is for, in refusals: its name and the setting that allows private addresses. */
export interface UrlPurpose {
  name: string;
  setting: string;
}

const WEBHOOK: UrlPurpose = { name: 'webhook URL', setting: 'WEBHOOK_ALLOW_PRIVATE_NETWORKS' };

/**
 * The address to send to: the URL's literal IP, or the first of its host name's addresses, after
 * checking every one of them (a name with one private address is refused). DNS errors propagate.
 */
export async function webhookTarget(
  url: URL,
  policy: WebhookUrlPolicy,
  purpose: UrlPurpose = WEBHOOK,
): Promise<ResolvedAddress> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const literal = net.isIP(host);
  const addresses = literal
    ? [{ address: host, family: literal as 4 | 6 }]
    : await (policy.resolve ?? systemResolve)(host);
  if (addresses.length === 0) throw invalid(`the ${purpose.name}'s host ${host} has no address`);
  if (!policy.allowPrivateNetworks) {
    for (const { address } of addresses) {
      const refusal = addressRefusal(address);
      if (refusal)
        throw invalid(
          `the ${purpose.name}'s host ${host} is not a public address: ${refusal} (${purpose.setting} allows it)`,
        );
    }
  }
  return addresses[0]!;
}

/**
 * The check when an endpoint is saved: a literal or resolved private address is refused now, not
 * at the first delivery. A name that does not resolve (yet) is accepted: each delivery checks again.
 */
export async function checkWebhookUrlOnSave(text: string, policy: WebhookUrlPolicy): Promise<URL> {
  const url = parseWebhookUrl(text);
  try {
    await webhookTarget(url, policy);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code !== 'ENOTFOUND' && code !== 'ENODATA' && code !== 'EAI_AGAIN') throw error;
  }
  return url;
}
