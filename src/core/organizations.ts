import type { Db, Fragment, Tx } from '../storage/database.ts';
import { firstRow, inTransaction } from '../storage/database.ts';
import { ensureAccount, type Account } from './accounts.ts';
import type { Actor } from './actor.ts';
import { recordAudit } from './audit.ts';
import { assertHoldsPermissionsOf } from './authority.ts';
import { conflict, invalid, isUniqueViolation, notFound } from './errors.ts';
import { isUuid } from './ids.ts';
import { joinOrganization, type Membership } from './memberships.ts';
import { defaultMembershipPolicy } from './policy.ts';
import { checkRequiredSsoChange, endNonSsoSessions, lockRequiredSso } from './required-sso.ts';
import { OWNER_ROLE, assertRolesExist } from './roles.ts';

export interface Organization {
  id: string;
  slug: string;
  name: string;
  inviteTtlHours: number;
  defaultRole: string;
  autoJoinVerifiedDomains: boolean;
  /** The single-organization rule: its members may belong to no other organization, nor join it. */
  singleOrganization: boolean;
  /** Members sign in only through the organization's SAML connection (see required-sso.ts). */
  requireSso: boolean;
  /** Owners who may still sign in without SSO while it is required (break-glass). */
  ssoBreakGlassAccountIds: string[];
  createdAt: Date;
  updatedAt: Date;
}

const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function slugify(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
}

/** Creates an organization with its first owner (the account is created if new). */
export async function createOrganization(
  db: Db,
  input: { name: string; slug?: string; ownerEmail: string; ownerGivenName?: string; ownerFamilyName?: string },
  actor: Actor,
): Promise<{ organization: Organization; owner: Account; membership: Membership }> {
  const name = input.name.trim();
  if (name.length < 1 || name.length > 200) throw invalid('name must be 1 to 200 characters');
  const slug = input.slug ?? slugify(name);
  if (!SLUG.test(slug))
    throw invalid(`slug must be 1 to 63 lowercase letters, digits or inner hyphens (got ${JSON.stringify(slug)})`);
  return inTransaction(db, async (tx) => {
    let organization: Organization;
    try {
      organization = firstRow(
        await tx<Organization[]>`
        insert into organizations (name, slug, single_organization)
        values (${name}, ${slug}, ${defaultMembershipPolicy().singleOrganization}) returning *`,
      );
    } catch (error) {
      if (isUniqueViolation(error)) throw conflict(`an organization with slug ${slug} already exists`, { slug });
      throw error;
    }
    const owner = await ensureAccount(tx, {
      email: input.ownerEmail,
      givenName: input.ownerGivenName,
      familyName: input.ownerFamilyName,
    });
    await recordAudit(
      tx,
      organization.id,
      actor,
      'organization.created',
      { type: 'organization', id: organization.id },
      { name, slug },
    );
    const { membership } = await joinOrganization(
      tx,
      { organizationId: organization.id, accountId: owner.id, source: 'admin', roles: [OWNER_ROLE] },
      actor,
    );
    return { organization, owner, membership };
  });
}

/** Looks an organization up by id or slug. */
export async function findOrganization(db: Db, idOrSlug: string): Promise<Organization | null> {
  const [row] = isUuid(idOrSlug)
    ? await db<Organization[]>`select * from organizations where id = ${idOrSlug}`
    : await db<Organization[]>`select * from organizations where slug = ${idOrSlug.toLowerCase()}`;
  return row ?? null;
}

/**
 * The id of the organization findOrganization finds, as a subquery (null when there is none), for
 * a statement sent together with it that cannot wait for the id (the SAML ACS reads the
 * organization and the connection the message names in one round trip).
 */
export function organizationIdOf(db: Db, idOrSlug: string): Fragment {
  return isUuid(idOrSlug)
    ? db`(select id from organizations where id = ${idOrSlug})`
    : db`(select id from organizations where slug = ${idOrSlug.toLowerCase()})`;
}

export async function countOrganizations(db: Db): Promise<number> {
  const [row] = await db<{ n: number }[]>`select count(*)::int as n from organizations`;
  return row!.n;
}

export interface OrganizationSettings {
  name?: string;
  inviteTtlHours?: number;
  defaultRole?: string;
  autoJoinVerifiedDomains?: boolean;
  singleOrganization?: boolean;
  requireSso?: boolean;
  ssoBreakGlassAccountIds?: string[];
}

/** What the settings change needs to know from outside core: whether a SAML connection is enabled. */
export interface SettingsChecks {
  hasEnabledSsoConnection?: (tx: Tx) => Promise<boolean>;
}

/** Changes organization settings; the default role must exist. */
export async function updateOrganizationSettings(
  db: Db,
  organizationId: string,
  changes: OrganizationSettings,
  actor: Actor,
  checks: SettingsChecks = {},
): Promise<Organization> {
  return inTransaction(db, async (tx) => {
    const ssoChange = changes.requireSso !== undefined || changes.ssoBreakGlassAccountIds !== undefined;
    const wasRequired = ssoChange ? await lockRequiredSso(tx, organizationId) : false;
    if (ssoChange)
      await checkRequiredSsoChange(
        tx,
        organizationId,
        changes,
        checks.hasEnabledSsoConnection ?? (() => Promise.resolve(false)),
      );
    if (changes.defaultRole !== undefined) {
      await assertRolesExist(tx, organizationId, [changes.defaultRole]);
      // Everyone who joins from now on gets it: the caller must hold its permissions.
      await assertHoldsPermissionsOf(tx, organizationId, actor, [
        { roles: [changes.defaultRole], reason: 'make the default role' },
      ]);
    }
    if (
      changes.inviteTtlHours !== undefined &&
      !(Number.isInteger(changes.inviteTtlHours) && changes.inviteTtlHours >= 1 && changes.inviteTtlHours <= 8760)
    ) {
      throw invalid('inviteTtlHours must be a whole number of hours from 1 to 8760');
    }
    const [org] = await tx<Organization[]>`
      update organizations set
        name = coalesce(${changes.name?.trim() ?? null}, name),
        invite_ttl_hours = coalesce(${changes.inviteTtlHours ?? null}::int, invite_ttl_hours),
        default_role = coalesce(${changes.defaultRole ?? null}, default_role),
        auto_join_verified_domains = coalesce(${changes.autoJoinVerifiedDomains ?? null}::boolean, auto_join_verified_domains),
        single_organization = coalesce(${changes.singleOrganization ?? null}::boolean, single_organization),
        require_sso = coalesce(${changes.requireSso ?? null}::boolean, require_sso),
        sso_break_glass_account_ids = coalesce(${changes.ssoBreakGlassAccountIds ?? null}::uuid[], sso_break_glass_account_ids),
        updated_at = now()
      where id = ${organizationId}
      returning *`;
    if (!org) throw notFound('organization');
    await recordAudit(
      tx,
      organizationId,
      actor,
      'organization.updated',
      { type: 'organization', id: organizationId },
      { ...changes },
    );
    // Requiring SSO (or taking an owner off the break-glass list) ends the sessions it no longer allows.
    if (ssoChange && org.requireSso) await endNonSsoSessions(tx, organizationId, actor);
    if (ssoChange && org.requireSso !== wasRequired)
      await recordAudit(
        tx,
        organizationId,
        actor,
        org.requireSso ? 'sso.required' : 'sso.not_required',
        {
          type: 'organization',
          id: organizationId,
        },
        { breakGlassAccountIds: org.ssoBreakGlassAccountIds },
      );
    return org;
  });
}
