import type { AppContext } from '../../src/context.ts';
import { systemActor } from '../../src/core/actor.ts';
import { createTxtLookup } from '../../src/core/domain-dns.ts';
import { listDomains, verifyDomain, type OrganizationDomain } from '../../src/core/domains.ts';
import { startDnsServer, type TestDnsServer } from './dns-server.ts';

let shared: Promise<TestDnsServer> | undefined;

/**
 * Publishes an added domain's TXT record on a loopback DNS server and verifies it through DNS, as
 * an organization would: for tests whose subject is what a verified domain allows.
 */
export async function verifyDomainByDns(
  ctx: AppContext,
  organizationId: string,
  domain: string,
): Promise<OrganizationDomain> {
  shared ??= startDnsServer();
  const dns = await shared;
  const added = (await listDomains(ctx.sql, organizationId)).find((d) => d.domain === domain);
  if (!added) throw new Error(`${domain} was not added to the organization`);
  dns.publish(domain, added.verificationToken);
  return verifyDomain(ctx.sql, organizationId, domain, systemActor('admin'), createTxtLookup([dns.server]));
}
