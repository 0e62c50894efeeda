import crypto from 'node:crypto';
import type { Db } from '../storage/database.ts';
import type { Actor } from './actor.ts';
import { systemActor } from './actor.ts';
import { recordAudit } from './audit.ts';
import { DnsUnavailable, type TxtLookup } from './domain-dns.ts';
import { conflict, invalid, isUniqueViolation, notFound, ruleViolation, unavailable } from './errors.ts';
import { recordChange } from './events.ts';
import { PUBLIC_MAIL_DOMAINS } from './public-mail-domains.ts';

/** True when the email's domain is one the organization has verified. */
export async function isInVerifiedDomain(db: Db, organizationId: string, email: string): Promise<boolean> {
  const domain = email.trim().toLowerCase().split('@').pop() ?? '';
  const [row] = await db`
    select 1 from organization_domains
    where organization_id = ${organizationId} and domain = ${domain} and verified_at is not null`;
  return Boolean(row);
}

export interface OrganizationDomain {
  domain: string;
  verificationToken: string;
  verifiedAt: Date | null;
  /** When the daily re-check last found the record. */
  checkedAt: Date | null;
  /** When a re-check found the record gone (the domain is unverified since). */
  verificationLostAt: Date | null;
  createdAt: Date;
}

const COLUMNS = 'domain, verification_token, verified_at, checked_at, verification_lost_at, created_at';

const DOMAIN = /^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

/** Claims an email domain; proving it (a DNS TXT record with the token) makes it verified. */
export async function addDomain(
  db: Db,
  organizationId: string,
  raw: string,
  actor: Actor,
): Promise<OrganizationDomain> {
  const domain = raw.trim().toLowerCase().replace(/\.$/, '');
  if (!DOMAIN.test(domain)) throw invalid(`not a domain name: ${JSON.stringify(raw)}`);
  if (PUBLIC_MAIL_DOMAINS.has(domain)) {
    throw invalid(`${domain} is a public email provider: no organization can claim it`, { domain });
  }
  const token = `orgsync-verification=${crypto.randomBytes(16).toString('hex')}`;
  const [row] = await db<OrganizationDomain[]>`
    insert into organization_domains (organization_id, domain, verification_token)
    values (${organizationId}, ${domain}, ${token})
    on conflict do nothing
    returning ${db.unsafe(COLUMNS)}`;
  if (!row) throw conflict(`${domain} is already added`);
  await recordAudit(db, organizationId, actor, 'domain.added', { type: 'domain', id: domain });
  return row;
}

export async function listDomains(db: Db, organizationId: string): Promise<OrganizationDomain[]> {
  return db<OrganizationDomain[]>`
    select ${db.unsafe(COLUMNS)} from organization_domains
    where organization_id = ${organizationId} order by domain`;
}

/** The TXT record an organization publishes at the domain to prove it controls it. */
export function verificationRecord(domain: OrganizationDomain): { name: string; type: 'TXT'; value: string } {
  return { name: domain.domain, type: 'TXT', value: domain.verificationToken };
}

/**
 * Verifies a domain by DNS: its TXT records must include the domain's token. A verified domain
 * belongs to one organization only.
 */
export async function verifyDomain(
  db: Db,
  organizationId: string,
  rawDomain: string,
  actor: Actor,
  lookupTxt: TxtLookup,
): Promise<OrganizationDomain> {
  const domain = rawDomain.toLowerCase();
  const [current] = await db<OrganizationDomain[]>`
    select ${db.unsafe(COLUMNS)} from organization_domains
    where organization_id = ${organizationId} and domain = ${domain}`;
  if (!current) throw notFound('domain', { domain });
  if (current.verifiedAt) return current;
  const found = await lookup(lookupTxt, domain);
  if (!found.includes(current.verificationToken)) {
    throw ruleViolation(
      `the TXT record was not found: publish a TXT record at ${domain} with the value ${current.verificationToken}, ` +
        'then verify again (DNS changes can take a while to appear)',
      { domain, expected: current.verificationToken, found },
    );
  }
  let row: OrganizationDomain | undefined;
  try {
    [row] = await db<OrganizationDomain[]>`
      update organization_domains set verified_at = now(), checked_at = now(), verification_lost_at = null
      where organization_id = ${organizationId} and domain = ${domain} and verified_at is null
      returning ${db.unsafe(COLUMNS)}`;
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`${domain} is verified by another organization`);
    throw error;
  }
  // A concurrent verification won: the domain is verified either way.
  if (!row) return (await listDomains(db, organizationId)).find((d) => d.domain === domain)!;
  await recordAudit(db, organizationId, actor, 'domain.verified', { type: 'domain', id: domain }, { method: 'dns' });
  return row;
}

async function lookup(lookupTxt: TxtLookup, domain: string): Promise<string[]> {
  try {
    return await lookupTxt(domain);
  } catch (error) {
    if (error instanceof DnsUnavailable) throw unavailable(error.message, { domain });
    throw error;
  }
}

/**
 * The daily re-check: every verified domain whose TXT record is gone (a definite answer, never a
 * failed lookup) is unverified, which stops auto-join through it. The change is audited and
 * announced (`domain.verification_lost`, which emails the organization's owners). Answers how many
 * domains were lost; domains whose lookup failed are left as they are and counted apart.
 */
export async function recheckVerifiedDomains(
  db: Db,
  lookupTxt: TxtLookup,
  limit = 500,
): Promise<{ checked: number; lost: number; unavailable: number }> {
  // Oldest check first, so a large fleet of domains is covered over several runs.
  const due = await db<{ organizationId: string; domain: string; verificationToken: string }[]>`
    select organization_id, domain, verification_token from organization_domains
    where verified_at is not null
    order by checked_at nulls first, domain
    limit ${limit}`;
  const counts = { checked: 0, lost: 0, unavailable: 0 };
  for (const d of due) {
    let found: string[];
    try {
      found = await lookupTxt(d.domain);
    } catch (error) {
      if (!(error instanceof DnsUnavailable)) throw error;
      counts.unavailable++;
      continue;
    }
    counts.checked++;
    if (found.includes(d.verificationToken)) {
      await db`update organization_domains set checked_at = now()
        where organization_id = ${d.organizationId} and domain = ${d.domain}`;
      continue;
    }
    const [lost] = await db`
      update organization_domains set verified_at = null, checked_at = now(), verification_lost_at = now()
      where organization_id = ${d.organizationId} and domain = ${d.domain} and verified_at is not null
      returning domain`;
    if (!lost) continue;
    counts.lost++;
    await recordChange(db, d.organizationId, systemActor('sync', 'domain re-check'), {
      action: 'domain.verification_lost',
      target: { type: 'domain', id: d.domain },
      details: { domain: d.domain, expected: d.verificationToken, found },
      event: 'domain.verification_lost',
      payload: { domain: d.domain },
    });
  }
  return counts;
}

export async function removeDomain(db: Db, organizationId: string, domain: string, actor: Actor): Promise<void> {
  const rows =
    await db`delete from organization_domains where organization_id = ${organizationId} and domain = ${domain.toLowerCase()} returning domain`;
  if (rows.length === 0) throw notFound('domain', { domain });
  await recordAudit(db, organizationId, actor, 'domain.removed', { type: 'domain', id: domain.toLowerCase() });
}
