import request from 'supertest';
import type { Express } from 'express';
import type { AppContext } from '../../../src/context.ts';
import { createApp } from '../../../src/http/app.ts';
import { createTestContext, createTestOrganization } from '../../support/context.ts';
import { IDP_ENTITY_ID, IDP_SSO_URL, authnRequestOf, encode, makeIdpKeys, type IdpKeys } from './idp.ts';

export interface SamlFixture {
  ctx: AppContext;
  app: Express;
  idp: IdpKeys;
  organization: Awaited<ReturnType<typeof createTestOrganization>>['organization'];
  adminKey: string;
  connectionId: string;
  acsUrl: string;
  audience: string;
}

/** IdP metadata as an admin would paste it (written by hand, not by samlify). */
export function idpMetadataXml(certificates: string[], entityId = IDP_ENTITY_ID, ssoUrl = IDP_SSO_URL): string {
  const keys = certificates
    .map((c) => `<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${c}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`)
    .join('');
  return `<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="${entityId}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    ${keys}
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="${ssoUrl}/post"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="${ssoUrl}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`;
}

/** A context, an organization "acme" and a SAML connection created through the admin API from metadata. */
export async function samlFixture(slug = 'acme', connection: Record<string, unknown> = {}): Promise<SamlFixture> {
  const ctx = await createTestContext();
  const { organization, adminKey } = await createTestOrganization(ctx, slug);
  const app = createApp(ctx);
  const idp = makeIdpKeys();
  const res = await request(app)
    .post('/api/saml/connections')
    .set('authorization', `Bearer ${adminKey}`)
    .send({ name: 'Test IdP', metadataXml: idpMetadataXml([idp.certificate]), ...connection });
  if (res.status !== 201) throw new Error(`connection not created: ${res.status} ${JSON.stringify(res.body)}`);
  return {
    ctx,
    app,
    idp,
    organization,
    adminKey,
    connectionId: res.body.id,
    acsUrl: `https://orgsync.test/saml/${slug}/acs`,
    audience: `https://orgsync.test/saml/${slug}/metadata`,
  };
}

export function postResponse(f: SamlFixture, xml: string, relayState?: string) {
  const form: Record<string, string> = { SAMLResponse: encode(xml) };
  if (relayState !== undefined) form.RelayState = relayState;
  return request(f.app).post(`/saml/${f.organization.slug}/acs`).type('form').send(form);
}

export async function lastAttempt(f: SamlFixture) {
  const [row] = await f.ctx.sql<{ outcome: string; reason: string | null; message: string | null; nameId: string | null; email: string | null }[]>`
    select outcome, reason, message, name_id, email from saml_attempts where organization_id = ${f.organization.id} order by id desc limit 1`;
  return row;
}

/** Starts an SP-initiated login and answers the AuthnRequest id the IdP would echo. */
export async function startLogin(f: SamlFixture, returnTo = '/app'): Promise<string> {
  const res = await request(f.app).get(`/saml/${f.organization.slug}/login`).query({ returnTo }).expect(302);
  return authnRequestOf(res.headers.location!).id;
}
