import type { Express } from 'express';
import request from 'supertest';
import type { AppContext } from '../../src/context.ts';
import { createApp } from '../../src/app.ts';
import { createTestContext, createTestOrganization } from './context.ts';

export const SCIM_JSON = 'application/scim+json';
export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

/** A test app with one organization, and a client that sends its SCIM token. */
export async function scimFixture(slug: string, env: Record<string, string> = {}) {
  const ctx: AppContext = await createTestContext(env);
  const app: Express = createApp(ctx);
  const org = await createTestOrganization(ctx, slug);
  return { ctx, app, org, client: scimClient(app, org.scimToken) };
}

export function scimClient(app: Express, token: string) {
  const auth = { authorization: `Bearer ${token}` };
  const send = (method: 'post' | 'put' | 'patch', path: string, body: unknown) =>
    request(app)[method](`/scim/v2${path}`).set(auth).set('content-type', SCIM_JSON).send(JSON.stringify(body));
  return {
    get: (path: string) => request(app).get(`/scim/v2${path}`).set(auth),
    delete: (path: string) => request(app).delete(`/scim/v2${path}`).set(auth),
    post: (path: string, body: unknown) => send('post', path, body),
    put: (path: string, body: unknown) => send('put', path, body),
    patch: (path: string, operations: unknown[]) =>
      send('patch', path, { schemas: [PATCH_OP], Operations: operations }),
    raw: (method: 'post' | 'put' | 'patch', path: string, body: string) =>
      request(app)[method](`/scim/v2${path}`).set(auth).set('content-type', SCIM_JSON).send(body),
  };
}

/** An Okta-shaped create body (Okta's SCIM 2.0 guide). */
export function oktaUser(email: string, extra: Record<string, unknown> = {}) {
  const [local] = email.split('@');
  return {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName: email,
    name: { givenName: local, familyName: 'Tester' },
    emails: [{ primary: true, value: email, type: 'work' }],
    displayName: `${local} Tester`,
    locale: 'en-US',
    externalId: `00u${local}`,
    groups: [],
    password: 'generated-by-okta-1',
    active: true,
    ...extra,
  };
}
