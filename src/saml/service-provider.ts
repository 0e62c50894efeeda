// The default import: under Node's own ESM loader the named exports of this CommonJS package
// miss SamlLib (only bundlers such as vitest's see it).
import samlify from 'samlify';
import type { AppContext } from '../context.ts';
import type { Organization } from '../core/organizations.ts';
import type { SamlConnection } from './connections.ts';
import { validateSamlSchema } from './schema.ts';
import { spKeyPair, type SpKeyPair } from './sp-keys.ts';
import { singleFlight } from '../storage/single-flight.ts';
import { remember } from './bounded-cache.ts';

// samlify refuses to parse anything without a schema validator.
samlify.setSchemaValidator({ validate: validateSamlSchema });

const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';

/** The SP URLs of an organization, to paste into the IdP. */
export function spUrls(publicUrl: string, organization: Pick<Organization, 'slug'>) {
  const base = `${publicUrl}/saml/${organization.slug}`;
  return {
    entityId: `${base}/metadata`,
    metadataUrl: `${base}/metadata`,
    acsUrl: `${base}/acs`,
    loginUrl: `${base}/login`,
  };
}

export type SpUrls = ReturnType<typeof spUrls>;

export interface ServiceProviderEntity {
  sp: samlify.ServiceProviderInstance;
  keys: SpKeyPair;
  urls: SpUrls;
}

/**
 * Built entities kept per organization (per context: tests run several apps in one process), so
 * a sign-in neither reads the key pair nor has samlify parse the SP metadata again. An
 * organization's key pair never changes once made (the first insert wins, nothing updates it);
 * a changed slug changes the URLs, and the entity is rebuilt around the same keys.
 */
const spEntities = new WeakMap<
  AppContext,
  { built: Map<string, ServiceProviderEntity>; building: ReturnType<typeof singleFlight<ServiceProviderEntity>> }
>();
const idpEntities = new Map<string, samlify.IdentityProviderInstance>();
/** Bounds both caches: the oldest entry goes when a new one would exceed it. */
const CACHE_LIMIT = 1_000;

/**
 * The organization's SP as samlify sees it (entity id, ACS, signing and encryption key). Requests
 * that find it not built yet (the first sign-ins of an organization, arriving together) share
 * one build: one read of the key pair, and at most one key pair made.
 */
export async function serviceProvider(ctx: AppContext, organization: Organization): Promise<ServiceProviderEntity> {
  const urls = spUrls(ctx.config.publicUrl, organization);
  let entities = spEntities.get(ctx);
  if (!entities) spEntities.set(ctx, (entities = { built: new Map(), building: singleFlight() }));
  const { built } = entities;
  const cached = built.get(organization.id);
  if (cached?.urls.entityId === urls.entityId) return cached;
  return entities.building(`${organization.id} ${urls.entityId}`, async () => {
    const keys = cached?.keys ?? (await spKeyPair(ctx.sql, ctx.config.serverSecret, organization.id, urls.entityId));
    return remember(built, organization.id, { sp: spOf(urls, keys), keys, urls }, CACHE_LIMIT);
  });
}

function spOf(urls: SpUrls, keys: SpKeyPair): samlify.ServiceProviderInstance {
  return samlify.ServiceProvider({
    entityID: urls.entityId,
    assertionConsumerService: [{ Binding: samlify.Constants.namespace.binding.post, Location: urls.acsUrl }],
    signingCert: keys.certificate,
    privateKey: keys.privateKey,
    encryptCert: keys.certificate,
    encPrivateKey: keys.privateKey,
    authnRequestsSigned: true,
    wantAssertionsSigned: true,
    requestSignatureAlgorithm: RSA_SHA256,
    nameIDFormat: ['urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'],
  });
}

/**
 * The IdP of a connection as samlify sees it, trusting exactly one of its certificates. Built
 * from metadata (escaped values we hold), since samlify's settings form warns on every call
 * about the single logout service orgsync does not use; kept per entity id, SSO URL and
 * certificate, so an edited connection gets a new one.
 */
export function identityProvider(connection: SamlConnection, certificate: string): samlify.IdentityProviderInstance {
  const key = JSON.stringify([connection.idpEntityId, connection.ssoUrl, certificate]);
  const cached = idpEntities.get(key);
  if (cached) return cached;
  const metadata =
    `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="${escapeXml(connection.idpEntityId)}">` +
    `<md:IDPSSODescriptor WantAuthnRequestsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
    `<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${certificate}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>` +
    `<md:SingleSignOnService Binding="${samlify.Constants.namespace.binding.redirect}" Location="${escapeXml(connection.ssoUrl)}"/>` +
    `</md:IDPSSODescriptor></md:EntityDescriptor>`;
  return remember(idpEntities, key, samlify.IdentityProvider({ metadata }), CACHE_LIMIT);
}

const escapeXml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);

/** A signed AuthnRequest for the HTTP-Redirect binding: its id and the URL to send the browser to. */
export function authnRequest(
  entity: ServiceProviderEntity,
  connection: SamlConnection,
  relayState: string,
): { id: string; url: string } {
  const { id, context } = entity.sp.createLoginRequest(
    identityProvider(connection, connection.certificates[0]!),
    'redirect',
    { relayState },
  );
  return { id, url: context };
}
