import { Resolver } from 'node:dns/promises';

/**
 * The TXT strings published at a name (each record's chunks joined), or [] when the name or its
 * TXT records do not exist. A lookup that could not get an answer (timeout, SERVFAIL, refused)
 * throws DnsUnavailable: "no answer" must never count as "the record is gone".
 */
export type TxtLookup = (name: string) => Promise<string[]>;

export class DnsUnavailable extends Error {
  constructor(name: string, code: string) {
    super(`the DNS lookup of ${name} failed (${code}); try again later`);
    this.name = 'DnsUnavailable';
  }
}

/** Answers "does not exist": NXDOMAIN, or the name exists without TXT records. */
const DEFINITELY_ABSENT = new Set(['ENOTFOUND', 'ENODATA']);

/** A TXT lookup through the given servers (`ip` or `ip:port`), or the system's resolvers. */
export function createTxtLookup(servers?: readonly string[], timeoutMs = 5_000): TxtLookup {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers && servers.length > 0) resolver.setServers([...servers]);
  return async (name) => {
    try {
      return (await resolver.resolveTxt(name)).map((chunks) => chunks.join(''));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
      if (DEFINITELY_ABSENT.has(code)) return [];
      throw new DnsUnavailable(name, code);
    }
  };
}
