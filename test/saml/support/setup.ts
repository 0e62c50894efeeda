import request from 'supertest';
import type { Express } from 'express';
import type { AppContext } from '../../../src/context.ts';
import { createApp } from '../../../src/app.ts';
import { createTestContext, createTestOrganization } from '../../support/context.ts';
import { IDP_ENTITY_ID, IDP_SSO_URL, authnRequestOf, encode, makeIdpKeys, type IdpKeys } from './idp.ts';

/**
 * The cookies a browser keeps for orgsync, enough to play one in tests: what Set-Cookie stores
 * (by name and path; an expired one is dropped) and what a request to a path sends back.
 */
export class CookieJar {
  readonly cookies = new Map<string, { value: string; path: string; attributes: string }>();

  /** Stores the Set-Cookie headers of a response. */
  store(res: { headers: Record<string, unknown> }): void {
    for (const header of (res.headers['set-cookie'] as string[] | undefined) ?? []) {
      const [pair, ...attributes] = header.split(';').map((p) => p.trim());
      const at = pair!.indexOf('=');
      const name = pair!.slice(0, at);
      const path = /^path=(.*)$/i.exec(attributes.find((a) => /^path=/i.test(a)) ?? '')?.[1] ?? '/';
      const maxAge = attributes.find((a) => /^max-age=/i.test(a));
      const expires = attributes.find((a) => /^expires=/i.test(a));
      const expired = maxAge
        ? Number(maxAge.split('=')[1]) <= 0
        : expires
          ? new Date(expires.slice(8)).getTime() <= Date.now()
          : false;
      const key = `${name} ${path}`;
      if (expired) this.cookies.delete(key);
      else this.cookies.set(key, { value: pair!.slice(at + 1), path, attributes: attributes.join('; ') });
    }
  }

  /** The Cookie header a request to that path carries (empty when none). */
  header(path: string): string {
    return [...this.cookies.entries()]
      .filter(([, c]) => path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map(([key, c]) => `${key.split(' ')[0]}=${c.value}`)
      .join('; ');
  }

  /** The cookies whose name starts so, as `name: {value, path, attributes}`. */
  named(prefix: string) {
    return [...this.cookies.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .map(([key, c]) => ({ name: key.split(' ')[0]!, ...c }));
  }
}

export interface SamlFixture {
  ctx: AppContext;
  app: Express;
  /** The browser the tests sign in with: startLogin and postResponse carry its cookies. */
  browser: CookieJar;
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
    .map(
      (c) =>
        `<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${c}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`,
    )
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
export async function samlFixture(
  slug = 'acme',
  connection: Record<string, unknown> = {},
  env: Record<string, string> = {},
): Promise<SamlFixture> {
  const ctx = await createTestContext(env);
  const publicUrl = ctx.config.publicUrl;
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
    browser: new CookieJar(),
    idp,
    organization,
    adminKey,
    connectionId: res.body.id,
    acsUrl: `${publicUrl}/saml/${slug}/acs`,
    audience: `${publicUrl}/saml/${slug}/metadata`,
  };
}

/** The browser posts the IdP's form to the ACS, with its cookies for the ACS. */
export async function postResponse(f: SamlFixture, xml: string, relayState?: string, browser = f.browser) {
  const form: Record<string, string> = { SAMLResponse: encode(xml) };
  if (relayState !== undefined) form.RelayState = relayState;
  const path = `/saml/${f.organization.slug}/acs`;
  const res = await request(f.app).post(path).set('cookie', browser.header(path)).type('form').send(form);
  browser.store(res);
  return res;
}

/** The session cookie a response sets, if any. */
export function sessionCookieOf(res: { headers: Record<string, unknown> }): string | undefined {
  return ((res.headers['set-cookie'] as string[] | undefined) ?? []).find((c) => c.startsWith('orgsync_session='));
}

export async function lastAttempt(f: SamlFixture) {
  const [row] = await f.ctx.sql<
    { outcome: string; reason: string | null; message: string | null; nameId: string | null; email: string | null }[]
  >`
    select outcome, reason, message, name_id, email from saml_attempts where organization_id = ${f.organization.id} order by id desc limit 1`;
  return row;
}

/**
 * Starts an SP-initiated login in the browser (which keeps the request's cookie) and answers the
 * AuthnRequest id the IdP would echo.
 */
export async function startLogin(
  f: SamlFixture,
  returnTo = '/app',
  browser = f.browser,
  query: Record<string, string> = {},
): Promise<string> {
  const res = await request(f.app)
    .get(`/saml/${f.organization.slug}/login`)
    .query({ returnTo, ...query })
    .expect(302);
  browser.store(res);
  return authnRequestOf(res.headers.location!).id;
}
