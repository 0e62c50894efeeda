import type { Db } from '../storage/database.ts';
import { conflict } from './errors.ts';

/**
 * Deployment-wide membership rules from the configuration (SINGLE_ORGANIZATION_POLICY). The core
 * keeps no configuration of its own: the process sets this once it has read its configuration
 * (openContext does, so every channel of the process sees it).
 */
export interface MembershipPolicy {
  /** A person belongs to one organization at a time (an invitation elsewhere counts). */
  singleOrganization: boolean;
}

let configured: MembershipPolicy = { singleOrganization: false };

export function configureMembershipPolicy(policy: MembershipPolicy): void {
  configured = { ...policy };
}

export function membershipPolicy(): MembershipPolicy {
  return configured;
}

/**
 * Under the single-organization policy, refuses a person who is a member of (active or
 * suspended) or invited to another organization: the one check for inviting and for every join.
 * The other organization is not named (this organization's admins need not learn it).
 */
export async function assertSingleOrganization(
  db: Db,
  organizationId: string,
  accountId: string,
  email: string,
): Promise<void> {
  // The account row lock makes two organizations taking the same person at once queue here.
  await db`select 1 from accounts where id = ${accountId} for update`;
  const [elsewhere] = await db<{ status: string }[]>`
    select status from memberships
    where account_id = ${accountId} and organization_id <> ${organizationId} and status in ('active', 'suspended', 'invited')
    order by status = 'invited'
    limit 1`;
  if (!elsewhere) return;
  const how = elsewhere.status === 'invited' ? 'invited there' : 'a member there';
  throw conflict(
    `${email} already belongs to another organization (${how}), and this deployment allows one organization per person (SINGLE_ORGANIZATION_POLICY)`,
    { policy: 'single_organization' },
  );
}
