import {
  ensureAccount,
  findAccountByEmail,
  normalizeEmail,
  updateAccountName,
  type Account,
} from '../core/accounts.ts';
import type { Actor } from '../core/actor.ts';
import { recordAudit } from '../core/audit.ts';
import { isInVerifiedDomain } from '../core/domains.ts';
import { DomainError } from '../core/errors.ts';
import { changeGroupMembers, createGroup, findGroupByName, groupsOfMember, type Group } from '../core/groups.ts';
import { hasLiveInvitation, invitationEmail } from '../core/invitation-lifecycle.ts';
import { emailsOfMembersWith } from '../core/member-directory.ts';
import { getMembership, joinOrganization, memberByEmail, type MemberByEmail } from '../core/memberships.ts';
import type { Organization } from '../core/organizations.ts';
import { closingStatement, type Db, type Tx } from '../storage/database.ts';
import type { SamlConnection } from './connections.ts';
import type { SamlIdentity } from './identity.ts';
import { SamlRefusal } from './refusal.ts';

/** How the person came to be a signed-in member. */
export type SignInPath = 'member' | 'invitation' | 'scim' | 'verified_domain';

export interface SignedIn {
  accountId: string;
  path: SignInPath;
}

/** What signIn reads first about the person an identity names. */
export interface Person {
  /** The account with the identity's email. */
  known: Account | null;
  /** By the same email, a moment later: its membership and saml groups. */
  byEmail: MemberByEmail | null;
}

/**
 * Reads the person: the account, and by the same email its membership and saml groups, two
 * statements sent together (one round trip). A caller may start it before statements of its own
 * (the ACS consumes the pending request meanwhile) to send them together.
 */
export function readPerson(tx: Tx, organizationId: string, email: string): Promise<Person> {
  const person = Promise.all([findAccountByEmail(tx, email), memberByEmail(tx, organizationId, email, 'saml')]).then(
    ([known, byEmail]) => ({ known, byEmail }),
  );
  person.catch(() => {}); // awaited by signIn, unless a refusal comes first
  return person;
}

/**
 * Applies the join rules, in order: an active member signs in (SCIM-provisioned people are
 * active members matched by email); a pending invitation is accepted; an email in a verified
 * domain joins with the default role when auto-join is on; anyone else is refused. Suspended
 * and removed members are refused. Then the person's saml groups become those of the assertion.
 * The `sso.login` audit entry closes the transaction (closingStatement): the caller's closing
 * statements and the COMMIT go with it.
 */
export async function signIn(
  tx: Tx,
  organization: Organization,
  connection: SamlConnection,
  identity: SamlIdentity,
  invitationId: string | null = null,
  person: Promise<Person> = readPerson(tx, organization.id, identity.email),
): Promise<SignedIn> {
  const refusal = (
    reason: 'not_allowed_to_join' | 'membership_suspended' | 'membership_removed' | 'invitation_email_mismatch',
    message: string,
  ) =>
    new SamlRefusal(reason, message, {
      connectionId: connection.id,
      idpEntityId: connection.idpEntityId,
      nameId: identity.nameId,
      email: identity.email,
    });

  // A login started from an invitation link accepts that invitation only for the invited email:
  // someone else signed in at the IdP (a shared browser) must not take it.
  const invited = invitationId ? await invitationEmail(tx, organization.id, invitationId) : null;
  if (invited && normalizeEmail(invited) !== normalizeEmail(identity.email))
    throw refusal(
      'invitation_email_mismatch',
      `the invitation is for ${invited}, but the identity provider signed in ${identity.email}`,
    );

  // The membership read by email counts only for the account found (it was read a moment later).
  const { known, byEmail } = await person;
  const same = known !== null && byEmail?.accountId === known.id ? byEmail : null;
  const existing = known ? (same ? same.membership : await getMembership(tx, organization.id, known.id)) : null;
  if (existing?.status === 'suspended')
    throw refusal('membership_suspended', `${identity.email} is suspended in ${organization.name}`);
  if (existing?.status === 'removed')
    throw refusal('membership_removed', `${identity.email} was removed from ${organization.name}`);

  let path: SignInPath | null = null;
  if (existing?.status === 'active') path = existing.source === 'scim' ? 'scim' : 'member';
  else if (existing?.status === 'invited' && (await hasLiveInvitation(tx, organization.id, existing.accountId)))
    path = 'invitation';
  else if (organization.autoJoinVerifiedDomains && (await isInVerifiedDomain(tx, organization.id, identity.email)))
    path = 'verified_domain';
  if (!path)
    throw refusal(
      'not_allowed_to_join',
      `${identity.email} is not a member of ${organization.name} and cannot join by itself`,
    );

  // The assertion's names make a new account's profile and fill in the parts an existing account
  // lacks (an invited person's, say); an existing name (the account may be shared with other
  // organizations, maybe named by its owner) changes only when the connection updates profiles.
  const names = { givenName: identity.givenName, familyName: identity.familyName };
  const missing = known && {
    givenName: known.givenName ?? names.givenName,
    familyName: known.familyName ?? names.familyName,
  };
  const account = !known
    ? await ensureAccount(tx, { email: identity.email, ...names })
    : connection.updateProfile && (names.givenName !== null || names.familyName !== null)
      ? await updateAccountName(tx, known.id, names)
      : missing!.givenName !== known.givenName || missing!.familyName !== known.familyName
        ? await updateAccountName(tx, known.id, missing!)
        : known;
  const actor: Actor = { type: 'account', id: account.id, name: account.email, channel: 'sso' };
  const joins = path === 'invitation' || path === 'verified_domain';
  if (joins) {
    try {
      await joinOrganization(tx, { organizationId: organization.id, accountId: account.id, source: 'sso' }, actor);
    } catch (error) {
      if (error instanceof DomainError && error.code === 'rule_violation')
        throw refusal('membership_suspended', error.message);
      // The single-organization policy: the person belongs to another organization.
      if (error instanceof DomainError && error.code === 'conflict' && error.details.policy)
        throw refusal('not_allowed_to_join', error.message);
      throw error;
    }
  }
  // The groups read with the membership are still the member's unless joining changed them.
  const current = same && !joins ? same.groups : await groupsOfMember(tx, organization.id, account.id, 'saml');
  await syncSamlGroups(tx, organization.id, account.id, current, identity.groups, actor);
  void closingStatement(
    tx,
    recordAudit(
      tx,
      organization.id,
      actor,
      'sso.login',
      { type: 'account', id: account.id },
      {
        connectionId: connection.id,
        idpEntityId: connection.idpEntityId,
        nameId: identity.nameId,
        path,
      },
    ),
  );
  return { accountId: account.id, path };
}

const SAML_GROUPS = { source: 'saml' } as const;

/**
 * Makes the person's membership in saml-source groups (`current`) equal the assertion's groups,
 * creating groups seen for the first time. Role mapping follows from the group events.
 */
async function syncSamlGroups(
  tx: Tx,
  organizationId: string,
  accountId: string,
  current: Pick<Group, 'id' | 'displayName'>[],
  names: string[],
  actor: Actor,
): Promise<void> {
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  for (const group of current) {
    if (!wanted.has(group.displayName.toLowerCase()))
      await changeGroupMembers(tx, organizationId, group.id, { remove: [accountId] }, actor, SAML_GROUPS);
  }
  const have = new Set(current.map((g) => g.displayName.toLowerCase()));
  for (const name of names) {
    if (have.has(name.toLowerCase())) continue;
    const group = await samlGroup(tx, organizationId, name, actor);
    await changeGroupMembers(tx, organizationId, group.id, { add: [accountId] }, actor, SAML_GROUPS);
  }
}

async function samlGroup(tx: Tx, organizationId: string, displayName: string, actor: Actor) {
  const found = await findGroupByName(tx, organizationId, 'saml', displayName);
  if (found) return found;
  try {
    return await createGroup(tx, { organizationId, source: 'saml', displayName }, actor);
  } catch (error) {
    // Another sign-in created it meanwhile.
    if (error instanceof DomainError && error.code === 'conflict')
      return (await findGroupByName(tx, organizationId, 'saml', displayName))!;
    throw error;
  }
}

/** Whom a refused person should ask: active members who may manage members (custom roles included). */
export function administratorsOf(db: Db, organizationId: string): Promise<string[]> {
  return emailsOfMembersWith(db, organizationId, 'members:manage', 5);
}
