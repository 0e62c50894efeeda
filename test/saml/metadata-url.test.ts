import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import { systemActor } from '../../src/core/actor.ts';
import { issueCredential } from '../../src/core/credentials.ts';
import { nextRefreshAt } from '../../src/saml/metadata-refresh.ts';
import { createReconciler } from '../../src/sync/index.ts';
import type { Reconciler } from '../../src/sync/reconciler.ts';
import { createTestContext, createTestOrganization, TEST_SERVER_SECRET } from '../support/context.ts';
import { makeIdpKeys, responseXml, signAssertion, type IdpKeys } from './support/idp.ts';
import { CookieJar, idpMetadataXml, lastAttempt, postResponse, type SamlFixture } from './support/setup.ts';

/**
 * An IdP publishing its metadata over real HTTP on 127.0.0.1 (private networks allowed by
 * configuration, except where a test turns that off), a connection created from the URL, and the
 * reconciler's metadata lane refreshing it while the IdP rotates its signing key.
 */

type Answer =
  | { kind: 'metadata'; xml: string }
  | { kind: 'status'; status: number }
  | { kind: 'huge' }
  | { kind: 'silent' }
  | { kind: 'redirect'; to: string };

class MetadataServer {
  answer: Answer = { kind: 'status', status: 404 };
  hits = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server = http.createServer((req, res) => {
    this.hits += 1;
    const answer: Answer =
      req.url === '/loop'
        ? { kind: 'redirect', to: '/loop' }
        : req.url === '/moved'
          ? { kind: 'redirect', to: '/metadata?via=redirect' }
          : this.answer;
    if (answer.kind === 'metadata')
      res.writeHead(200, { 'content-type': 'application/samlmetadata+xml' }).end(answer.xml);
    else if (answer.kind === 'status') res.writeHead(answer.status).end('no');
    else if (answer.kind === 'redirect') res.writeHead(302, { location: answer.to }).end();
    else if (answer.kind === 'huge') res.writeHead(200).end(`<x>${'a'.repeat(100_000)}</x>`);
    // 'silent': the request is never answered; the fetch's timeout ends it.
  });

  async start(): Promise<string> {
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** Metadata the IdP publishes: its certificates, and a cacheDuration so the lane refreshes it at once. */
const published = (certificates: string[], cacheDuration = 'PT0S') =>
  idpMetadataXml(certificates).replace(
    '<md:EntityDescriptor ',
    `<md:EntityDescriptor cacheDuration="${cacheDuration}" `,
  );

const fingerprint = (keys: IdpKeys) => new crypto.X509Certificate(keys.certificatePem).fingerprint256;

const idp = new MetadataServer();
const oldKey = makeIdpKeys('idp-2025');
const newKey = makeIdpKeys('idp-2026');
let base: string;
let f: SamlFixture;
let reconciler: Reconciler;

beforeAll(async () => {
  base = await idp.start();
  const ctx = await createTestContext({
    SAML_METADATA_ALLOW_PRIVATE_NETWORKS: 'true',
    SAML_METADATA_TIMEOUT_MS: '300',
    SAML_METADATA_MAX_BYTES: '65536',
    SAML_METADATA_REFRESH_MIN_SECONDS: '0',
  });
  const { organization, adminKey } = await createTestOrganization(ctx, 'acme');
  const publicUrl = ctx.config.publicUrl;
  f = {
    ctx,
    app: createApp(ctx),
    browser: new CookieJar(),
    idp: oldKey,
    organization,
    adminKey,
    connectionId: '',
    acsUrl: `${publicUrl}/saml/acme/acs`,
    audience: `${publicUrl}/saml/acme/metadata`,
  };
  reconciler = createReconciler(ctx);
});
afterAll(async () => {
  await idp.stop();
  await f.ctx.database.close();
});

const admin = () => ({ authorization: `Bearer ${f.adminKey}` });
const connection = async () =>
  (await request(f.app).get(`/api/saml/connections/${f.connectionId}`).set(admin()).expect(200)).body;
const connectionCount = async () =>
  (await request(f.app).get('/api/saml/connections').set(admin()).expect(200)).body.items.length;

async function signInWith(keys: IdpKeys) {
  const xml = signAssertion(responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: 'owner@acme.test' }), keys);
  const res = await postResponse(f, xml);
  return { status: res.status, attempt: await lastAttempt(f) };
}

async function auditOf(action: string) {
  return f.ctx.sql<{ actorName: string; details: Record<string, unknown> }[]>`
    select actor_name, details from audit_log
    where organization_id = ${f.organization.id} and action = ${action} order by id`;
}

describe('a SAML connection from a metadata URL', () => {
  it('is created from the URL: the metadata is fetched at once', async () => {
    idp.answer = { kind: 'metadata', xml: published([oldKey.certificate]) };
    const res = await request(f.app)
      .post('/api/saml/connections')
      .set(admin())
      .send({ name: 'IdP by URL', metadataUrl: `${base}/metadata` });
    expect(res.status, res.text).toBe(201);
    f.connectionId = res.body.id;
    expect(res.body).toMatchObject({
      metadataUrl: `${base}/metadata`,
      idpEntityId: 'https://idp.example.test/metadata',
      ssoUrl: 'https://idp.example.test/sso',
      certificates: [oldKey.certificate],
      metadataError: null,
    });
    expect(res.body.metadataRefreshedAt).toBeTruthy();
    expect(await auditOf('saml_connection.created')).toMatchObject([
      { details: { metadataUrl: `${base}/metadata`, certificates: [fingerprint(oldKey)] } },
    ]);
    expect(await signInWith(oldKey)).toMatchObject({ status: 303, attempt: { outcome: 'success' } });
  });

  it('refuses (403) a caller who may not configure identity before fetching anything', async () => {
    const key = await issueCredential(
      f.ctx.sql,
      TEST_SERVER_SECRET,
      { organizationId: f.organization.id, kind: 'admin', name: 'an admin', roles: ['admin'] },
      systemActor('admin'),
    );
    const asAdmin = { authorization: `Bearer ${key.secret}` };
    idp.answer = { kind: 'metadata', xml: published([newKey.certificate]) };
    const hits = idp.hits;
    const connections = await connectionCount();

    const created = await request(f.app)
      .post('/api/saml/connections')
      .set(asAdmin)
      .send({ name: 'Mine', metadataUrl: `${base}/metadata?from=admin` })
      .expect(403);
    expect(created.body.message).toContain('connect an identity provider');
    const changed = await request(f.app)
      .patch(`/api/saml/connections/${f.connectionId}`)
      .set(asAdmin)
      .send({ metadataUrl: `${base}/metadata?from=admin` })
      .expect(403);
    expect(changed.body.message).toContain('change an identity provider connection');
    // Refreshing would make the connection trust what its URL now lists: the same right.
    const refreshed = await request(f.app)
      .post(`/api/saml/connections/${f.connectionId}/refresh-metadata`)
      .set(asAdmin)
      .expect(403);
    expect(refreshed.body.message).toContain('change an identity provider connection');

    expect(idp.hits).toBe(hits);
    expect(await connectionCount()).toBe(connections);
    expect(await connection()).toMatchObject({
      metadataUrl: `${base}/metadata`,
      certificates: [oldKey.certificate],
      metadataError: null,
    });
    expect(await auditOf('saml_connection.certificate_added')).toEqual([]);
  });

  it('answers 404 for a connection not in the organization before fetching a new metadata URL', async () => {
    const other = await createTestOrganization(f.ctx, 'other-org');
    idp.answer = { kind: 'metadata', xml: published([newKey.certificate]) };
    const hits = idp.hits;
    const patch = (id: string, adminKey: string) =>
      request(f.app)
        .patch(`/api/saml/connections/${id}`)
        .set({ authorization: `Bearer ${adminKey}` })
        .send({ metadataUrl: `${base}/metadata?from=elsewhere` });

    await patch(f.connectionId, other.adminKey).expect(404);
    await patch(crypto.randomUUID(), f.adminKey).expect(404);
    await patch('not-an-id', f.adminKey).expect(404);

    expect(idp.hits).toBe(hits);
    expect(await connection()).toMatchObject({ metadataUrl: `${base}/metadata`, certificates: [oldKey.certificate] });
  });

  it('follows a key rotation: the new certificate beside the old one, then the old one dropped', async () => {
    // The IdP publishes its next certificate beside the current one: both sign in.
    idp.answer = { kind: 'metadata', xml: published([oldKey.certificate, newKey.certificate]) };
    expect(await reconciler.samlMetadata()).toMatchObject({
      metadataChecked: 1,
      metadataChanged: 1,
      metadataFailed: 0,
    });
    expect((await connection()).certificates).toEqual([oldKey.certificate, newKey.certificate]);
    expect(await signInWith(newKey)).toMatchObject({ status: 303, attempt: { outcome: 'success' } });
    expect(await signInWith(oldKey)).toMatchObject({ status: 303, attempt: { outcome: 'success' } });
    expect(await auditOf('saml_connection.certificate_added')).toMatchObject([
      {
        actorName: 'reconciler',
        details: { fingerprintSha256: fingerprint(newKey), subject: 'CN=idp-2026', metadataUrl: `${base}/metadata` },
      },
    ]);

    // The IdP retires the old key: responses signed by it are refused from now on.
    idp.answer = { kind: 'metadata', xml: published([newKey.certificate]) };
    expect(await reconciler.samlMetadata()).toMatchObject({ metadataChanged: 1 });
    expect((await connection()).certificates).toEqual([newKey.certificate]);
    expect(await signInWith(oldKey)).toMatchObject({
      status: 403,
      attempt: { outcome: 'refused', reason: 'unknown_certificate' },
    });
    expect(await signInWith(newKey)).toMatchObject({ status: 303 });
    expect(await auditOf('saml_connection.certificate_removed')).toMatchObject([
      { details: { fingerprintSha256: fingerprint(oldKey), subject: 'CN=idp-2025' } },
    ]);

    // Unchanged metadata changes nothing and audits nothing.
    const entries = (await f.ctx.sql`select count(*)::int as n from audit_log`)[0]!.n as number;
    expect(await reconciler.samlMetadata()).toMatchObject({ metadataChecked: 1, metadataChanged: 0 });
    expect((await f.ctx.sql`select count(*)::int as n from audit_log`)[0]!.n).toBe(entries);
  });

  it('keeps the last good metadata when a refresh fails, shows the error and retries', async () => {
    const failures: [Answer, RegExp][] = [
      [{ kind: 'status', status: 500 }, /answered HTTP 500/],
      [{ kind: 'huge' }, /larger than 65536 bytes/],
      [{ kind: 'silent' }, /no complete answer within 300 ms/],
      [
        { kind: 'metadata', xml: '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"' },
        /well-formed/,
      ],
      [
        {
          kind: 'metadata',
          xml: published([newKey.certificate]).replace('<md:SingleSign', '<md:Bogus/><md:SingleSign'),
        },
        /schema/,
      ],
      [
        {
          kind: 'metadata',
          xml: published([oldKey.certificate]).replace('https://idp.example.test/metadata', 'https://other.test'),
        },
        /for IdP https:\/\/other\.test/,
      ],
    ];
    for (const [answer, error] of failures) {
      idp.answer = answer;
      expect(await reconciler.samlMetadata()).toMatchObject({ metadataChecked: 1, metadataFailed: 1 });
      const shown = await connection();
      expect(shown.metadataError).toMatch(error);
      expect(shown.metadataErrorAt).toBeTruthy();
      expect(shown.certificates).toEqual([newKey.certificate]);
      expect(await signInWith(newKey)).toMatchObject({ status: 303 });
    }
    // The first failure is audited, not every retry.
    expect(await auditOf('saml_connection.metadata_refresh_failed')).toMatchObject([
      { details: { error: expect.stringMatching(/HTTP 500/) } },
    ]);

    // The IdP answers again: the error is cleared.
    idp.answer = { kind: 'metadata', xml: published([newKey.certificate]) };
    expect(await reconciler.samlMetadata()).toMatchObject({ metadataChecked: 1, metadataFailed: 0 });
    expect((await connection()).metadataError).toBeNull();
  });

  it("refreshes when the metadata's cacheDuration says, not before", async () => {
    idp.answer = { kind: 'metadata', xml: published([newKey.certificate], 'PT1H') };
    await request(f.app).post(`/api/saml/connections/${f.connectionId}/refresh-metadata`).set(admin()).expect(200);
    const next = new Date((await connection()).metadataNextRefreshAt).getTime() - Date.now();
    expect(next).toBeGreaterThan(55 * 60_000);
    expect(next).toBeLessThan(61 * 60_000);
    const hits = idp.hits;
    expect(await reconciler.samlMetadata()).toMatchObject({ metadataChecked: 0 });
    expect(idp.hits).toBe(hits);
    // Once due, it is fetched again.
    expect(await reconciler.samlMetadata(new Date(Date.now() + 61 * 60_000))).toMatchObject({ metadataChecked: 1 });
    expect(idp.hits).toBe(hits + 1);
  });

  it('saves nothing when the URL cannot be fetched or its metadata is not acceptable', async () => {
    const before = await connectionCount();
    const create = (path: string) =>
      request(f.app)
        .post('/api/saml/connections')
        .set(admin())
        .send({ name: 'Broken', metadataUrl: `${base}${path}` });

    idp.answer = { kind: 'status', status: 500 };
    const failed = await create('/metadata');
    expect(failed.status).toBe(502);
    expect(failed.body).toMatchObject({ error: 'bad_gateway', message: expect.stringMatching(/HTTP 500/) });

    idp.answer = { kind: 'silent' };
    expect((await create('/metadata')).status).toBe(502);
    expect((await create('/loop')).body.message).toMatch(/redirected more than 3 times/);

    idp.answer = { kind: 'metadata', xml: '<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"/>' };
    const noIdp = await create('/metadata');
    expect(noIdp.status).toBe(400);
    expect(noIdp.body.message).toMatch(/no EntityDescriptor with an IDPSSODescriptor/);

    idp.answer = {
      kind: 'metadata',
      xml: published([oldKey.certificate]).replace('cacheDuration="PT0S"', 'validUntil="2020-01-01T00:00:00Z"'),
    };
    expect((await create('/metadata')).body.message).toMatch(/expired/);

    expect(await connectionCount()).toBe(before);
    // A PATCH to a failing URL changes nothing either.
    const patch = await request(f.app)
      .patch(`/api/saml/connections/${f.connectionId}`)
      .set(admin())
      .send({ metadataUrl: `${base}/metadata` });
    expect(patch.status).toBe(400);
    expect((await connection()).certificates).toEqual([newKey.certificate]);
  });

  it('follows a redirect to the metadata (re-checked)', async () => {
    idp.answer = { kind: 'metadata', xml: published([newKey.certificate]) };
    const res = await request(f.app)
      .patch(`/api/saml/connections/${f.connectionId}`)
      .set(admin())
      .send({ metadataUrl: `${base}/moved` });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ metadataUrl: `${base}/moved`, metadataError: null });
  });

  it('refuses a private or loopback address unless allowed', async () => {
    const strict = createApp({
      ...f.ctx,
      config: { ...f.ctx.config, samlMetadata: { ...f.ctx.config.samlMetadata, allowPrivateNetworks: false } },
    });
    idp.answer = { kind: 'metadata', xml: published([newKey.certificate]) };
    const hits = idp.hits;
    const before = await connectionCount();
    const res = await request(strict)
      .post('/api/saml/connections')
      .set(admin())
      .send({ name: 'Internal', metadataUrl: `${base}/metadata` });
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(
      /not a public address: 127\.0\.0\.1 \(loopback.*SAML_METADATA_ALLOW_PRIVATE_NETWORKS/,
    );
    expect(idp.hits).toBe(hits);
    expect(await connectionCount()).toBe(before);
    const plainHttp = await request(strict)
      .post('/api/saml/connections')
      .set(admin())
      .send({ name: 'Internal', metadataUrl: 'http://10.0.0.1/metadata' });
    expect(plainHttp.body.message).toMatch(/https URL/);
  });
});

describe('nextRefreshAt', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const policy = { refreshFloorSeconds: 300, refreshCeilingSeconds: 86_400 };
  const after = (metadata: Parameters<typeof nextRefreshAt>[0]) =>
    (nextRefreshAt(metadata, now, policy).getTime() - now.getTime()) / 1000;

  it('follows cacheDuration and validUntil, whichever is sooner, between the floor and the ceiling', () => {
    expect(after({ cacheDurationSeconds: 3600 })).toBe(3600);
    expect(after({ cacheDurationSeconds: 3600, validUntil: new Date(now.getTime() + 1800_000) })).toBe(1800);
    expect(after({ cacheDurationSeconds: 10 })).toBe(300);
    expect(after({ cacheDurationSeconds: 30 * 86_400 })).toBe(86_400);
    expect(after({})).toBe(86_400);
  });
});
