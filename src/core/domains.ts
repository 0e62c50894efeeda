import crypto from 'node:crypto';
import type { Db } from '../storage/database.ts';
import type { Actor } from './actor.ts';
import { recordAudit } from './audit.ts';
import { conflict, invalid, isUniqueViolation, notFound } from './errors.ts';

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
  createdAt: Date;
}

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
  const token = `orgsync-verification=${crypto.randomBytes(16).toString('hex')}`;
  const [row] = await db<OrganizationDomain[]>`
    insert into organization_domains (organization_id, domain, verification_token)
    values (${organizationId}, ${domain}, ${token})
    on conflict do nothing
    returning domain, verification_token, verified_at, created_at`;
  if (!row) throw conflict(`${domain} is already added`);
  await recordAudit(db, organizationId, actor, 'domain.added', { type: 'domain', id: domain });
  return row;
}

export async function listDomains(db: Db, organizationId: string): Promise<OrganizationDomain[]> {
  return db<OrganizationDomain[]>`
    select domain, verification_token, verified_at, created_at from organization_domains
    where organization_id = ${organizationId} order by domain`;
}

/**
 * Marks a domain verified. A verified domain belongs to one organization only. (Checking the DNS
 * TXT record automatically needs network access this deployment may not have; an admin with
 * org:manage confirms it instead.)
 */
export async function markDomainVerified(
  db: Db,
  organizationId: string,
  domain: string,
  actor: Actor,
): Promise<OrganizationDomain> {
  let row: OrganizationDomain | undefined;
  try {
    [row] = await db<OrganizationDomain[]>`
      update organization_domains set verified_at = coalesce(verified_at, now())
      where organization_id = ${organizationId} and domain = ${domain.toLowerCase()}
      returning domain, verification_token, verified_at, created_at`;
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`${domain} is verified by another organization`);
    throw error;
  }
  if (!row) throw notFound('domain', { domain });
  await recordAudit(db, organizationId, actor, 'domain.verified', { type: 'domain', id: row.domain });
  return row;
}

export async function removeDomain(db: Db, organizationId: string, domain: string, actor: Actor): Promise<void> {
  const rows =
    await db`delete from organization_domains where organization_id = ${organizationId} and domain = ${domain.toLowerCase()} returning domain`;
  if (rows.length === 0) throw notFound('domain', { domain });
  await recordAudit(db, organizationId, actor, 'domain.removed', { type: 'domain', id: domain.toLowerCase() });
}
