import type { AppContext } from './context.ts';
import { systemActor } from './core/actor.ts';
import { issueCredential } from './core/credentials.ts';
import { countOrganizations, createOrganization } from './core/organizations.ts';
import { inTransaction } from './storage/database.ts';

export interface DemoOrganization {
  slug: string;
  scimBaseUrl: string;
  scimToken: string;
  adminApiKey: string;
  samlMetadataUrl: string;
}

/**
 * On the very first start (no organization exists yet) creates a demo organization with a SCIM
 * token and an admin API key. Returns null on every later start: the secrets exist only once.
 */
export async function createDemoOrganizationOnFirstStart(ctx: AppContext): Promise<DemoOrganization | null> {
  return inTransaction(ctx.sql, async (tx) => {
    // Two instances starting together on an empty database must not both create it.
    await tx`select pg_advisory_xact_lock(7317002)`;
    if ((await countOrganizations(tx)) > 0) return null;
    const actor = systemActor('system', 'first start');
    const { organization } = await createOrganization(
      tx,
      { name: 'Demo', slug: 'demo', ownerEmail: 'owner@demo.example' },
      actor,
    );
    const scim = await issueCredential(
      tx,
      ctx.config.serverSecret,
      { organizationId: organization.id, kind: 'scim', name: 'demo' },
      actor,
    );
    const admin = await issueCredential(
      tx,
      ctx.config.serverSecret,
      { organizationId: organization.id, kind: 'admin', name: 'demo', roles: ['owner'] },
      actor,
    );
    return {
      slug: organization.slug,
      scimBaseUrl: `${ctx.config.publicUrl}/scim/v2`,
      scimToken: scim.secret,
      adminApiKey: admin.secret,
      samlMetadataUrl: `${ctx.config.publicUrl}/saml/${organization.slug}/metadata`,
    };
  });
}
