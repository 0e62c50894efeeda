import type { Db } from '../storage/database.ts';
import { conflict } from './errors.ts';

/**
 * Membership rules. Each organization keeps its own (a column of `organizations`, changed through
 * its settings), so every instance on one database applies the same rule; the configuration
 * (SINGLE_ORGANIZATION_POLICY) only gives the value new organizations start with. The process
 * sets it once it has read its configuration (openContext does).
 */
export interface MembershipPolicy {
  /** A person belongs to one organization at a time (an invitation elsewhere counts). */
  singleOrganization: boolean;
}

let defaults: MembershipPolicy = { singleOrganization: false };

export function configureMembershipPolicy(policy: MembershipPolicy): void {
  defaults = { ...policy };
}

/** The policy a new organization starts with. */
export function defaultMembershipPolicy(): MembershipPolicy {
  return defaults;
}

/**
 * Organizations that existed before the rule became a setting take the configured default once
 * (the first instance to start after the upgrade decides); a no-op afterwards.
 */
export async function adoptDefaultMembershipPolicy(db: Db): Promise<void> {
  await db`update organizations set single_organization = ${defaults.singleOrganization}
    where single_organization is null`;
}

/**
 * Refuses a person who is a member of (active or suspended) or invited to another organization,
 * when this organization or that one has the single-organization rule: the one check for
 * inviting and for every join (one round trip). The other organization is not named (this
 * organization's admins need not learn it).
 */
export async function assertSingleOrganization(
  db: Db,
  organizationId: string,
  accountId: string,
  email?: string,
): Promise<void> {
  // The account row lock makes two organizations taking the same person at once queue here; the
  // check is a statement of its own so that it sees what the lock waited for.
  const [, [elsewhere]] = await Promise.all([
    db`select 1 from accounts where id = ${accountId} for update`,
    db<{ status: string }[]>`
      select m.status from memberships m join organizations o on o.id = m.organization_id
      where m.account_id = ${accountId} and m.organization_id <> ${organizationId}
        and m.status in ('active', 'suspended', 'invited')
        and (o.single_organization or (select single_organization from organizations where id = ${organizationId}))
      order by m.status = 'invited'
      limit 1`,
  ]);
  if (!elsewhere) return;
  email ??= (await db<{ email: string }[]>`select email from accounts where id = ${accountId}`)[0]?.email ?? accountId;
  const how = elsewhere.status === 'invited' ? 'invited there' : 'a member there';
  throw conflict(
    `${email} already belongs to another organization (${how}), and the single-organization policy allows one organization per person (SINGLE_ORGANIZATION_POLICY)`,
    { policy: 'single_organization' },
  );
}
