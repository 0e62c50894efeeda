import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { responseXml, signAssertion, signResponse } from './support/idp.ts';
import { lastAttempt, postResponse, samlFixture, startLogin, type SamlFixture } from './support/setup.ts';

let f: SamlFixture;
beforeAll(async () => {
  f = await samlFixture();
});
afterAll(async () => f.ctx.database.close());

describe('SAML sign-in', () => {
  it('an owner signs in SP-initiated and /saml/me tells who they are', async () => {
    const requestId = await startLogin(f, '/app/home');
    const xml = signAssertion(responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: 'owner@acme.test', inResponseTo: requestId }), f.idp);
    const res = await postResponse(f, xml);
    expect(res.status, res.text).toBe(303);
    expect(res.headers.location).toBe('https://orgsync.test/app/home');
    const cookie = res.headers['set-cookie']![0]!;
    expect(cookie).toMatch(/orgsync_session=/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/Secure/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'success', reason: 'member', nameId: 'owner@acme.test' });

    const me = await request(f.app).get('/saml/me').set('cookie', cookie.split(';')[0]!).expect(200);
    expect(me.body.account.email).toBe('owner@acme.test');
    expect(me.body.organization.slug).toBe('acme');
    expect(me.body.roles).toEqual(['owner']);
    expect(me.body.permissions).toContain('org:manage');

    await request(f.app).post('/saml/logout').set('cookie', cookie.split(';')[0]!).expect(204);
    await request(f.app).get('/saml/me').set('cookie', cookie.split(';')[0]!).expect(401);
  });

  it('accepts a response signed only at the Response level', async () => {
    const xml = signResponse(responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: 'owner@acme.test' }), f.idp);
    const res = await postResponse(f, xml);
    expect(res.status, res.text).toBe(303);
    expect(await lastAttempt(f)).toMatchObject({ outcome: 'success' });
  });
});
