import type { Db } from '../storage/database.ts';

/** True when the email's domain is one the organization has verified. */
export async function isInVerifiedDomain(db: Db, organizationId: string, email: string): Promise<boolean> {
  const domain = email.trim().toLowerCase().split('@').pop() ?? '';
  const [row] = await db`
    select 1 from organization_domains
    where organization_id = ${organizationId} and domain = ${domain} and verified_at is not null`;
  return Boolean(row);
}
