import { Writable } from 'node:stream';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../src/context.ts';
import { createApp } from '../src/app.ts';
import { createLogger } from '../src/log.ts';
import { createReconciler } from '../src/sync/index.ts';
import { createTestContext, createTestOrganization } from './support/context.ts';
import { oktaUser, scimClient } from './support/scim.ts';
import { startSmtpServer } from './support/smtp.ts';
import { startWebhookReceiver } from './support/webhook-receiver.ts';

/** A logger at the default level (info) writing into `lines`, as the process would to stdout. */
function capturingContext(base: AppContext, level = 'info') {
  const lines: string[] = [];
  const sink = new Writable({
    write: (chunk, _encoding, done) => {
      lines.push(String(chunk));
      done();
    },
  });
  return { ctx: { ...base, log: createLogger(level, sink) }, lines };
}

describe('a full run logged at the default level', () => {
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let hooks: Awaited<ReturnType<typeof startWebhookReceiver>>;
  let base: AppContext;
  beforeAll(async () => {
    [smtp, hooks] = await Promise.all([startSmtpServer(), startWebhookReceiver()]);
    base = await createTestContext({ SMTP_URL: smtp.url, WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
  });
  afterAll(async () => {
    await base.database.close();
    await Promise.all([smtp.close(), hooks.close()]);
  });

  it('holds none of the secrets it created and no email address', async () => {
    const { ctx, lines } = capturingContext(base);
    const app = createApp(ctx);
    const org = await createTestOrganization(ctx, 'logs');
    const admin = { authorization: `Bearer ${org.adminKey}` };
    const secrets = [org.scimToken, org.adminKey];
    const emails = [org.owner.email, 'jane.doe@logs.test', 'invitee@logs.test', 'john@logs.test'];

    // SCIM tokens: issued and rotated through the admin API.
    const issued = await request(app).post('/api/scim-tokens').set(admin).send({ name: 'okta' }).expect(201);
    const rotated = await request(app)
      .post(`/api/scim-tokens/${issued.body.token.id}/rotate`)
      .set(admin)
      .send({ overlapHours: 1 })
      .expect(201);
    secrets.push(issued.body.secret, rotated.body.secret);

    // SCIM provisioning with filters naming people; some refused (logged at warn).
    const scim = scimClient(app, rotated.body.secret);
    const jane = (await scim.post('/Users', oktaUser('jane.doe@logs.test')).expect(201)).body;
    await scim.post('/Users', oktaUser('jane.doe@logs.test')).expect(409);
    await scim.get(`/Users?filter=${encodeURIComponent('userName eq "jane.doe@logs.test"')}`).expect(200);
    await scim.get(`/Users?filter=${encodeURIComponent('emails.value co "john@logs.test"')}`).expect(200);
    await scim.get(`/Users?filter=${encodeURIComponent('emails.value xx "john@logs.test"')}`).expect(400);
    await scim.patch(`/Users/${jane.id}`, [{ op: 'replace', path: 'active', value: false }]).expect(200);
    await scimClient(app, `${issued.body.secret}x`).get('/Users').expect(401);

    // A webhook (its signing secret is answered once) and an invitation, delivered by the reconciler.
    const webhook = await request(app).post('/api/webhooks').set(admin).send({ url: hooks.url }).expect(201);
    secrets.push(webhook.body.secret);
    await request(app)
      .post('/api/invitations')
      .set(admin)
      .send({ emails: ['invitee@logs.test'] })
      .expect(201);
    await createReconciler(ctx).events();
    const mail = smtp.messages.find((m) => m.to.includes('invitee@logs.test'));
    const token = /token=3D([A-Za-z0-9_-]+)/.exec(mail!.raw.replace(/=\r?\n/g, ''))![1]!;
    secrets.push(token);

    // The invitee follows the link, accepts (signed in), uses the session, then the spent link again.
    await request(app).get(`/invitations/accept?token=${token}`).expect(200);
    const accepted = await request(app)
      .post('/invitations/accept')
      .set('sec-fetch-site', 'same-origin')
      .type('form')
      .send({ token, givenName: 'In', familyName: 'Vitee' })
      .expect(200);
    const session = /orgsync_session=([^;]+)/.exec(accepted.headers['set-cookie']![0]!)![1]!;
    secrets.push(session);
    await request(app).get('/api/organization').set('cookie', `orgsync_session=${session}`).expect(200);
    await request(app).get(`/invitations/accept?token=${token}`).expect(410);
    await request(app).get('/api/members?email=invitee%40logs.test').set(admin).expect(200);
    await request(app).get('/api/audit?actor=owner%40logs.test').set(admin).expect(200);
    await createReconciler(ctx).events();

    const log = lines.join('');
    // The run was logged: requests, refusals and the reconciler.
    expect(log).toContain('"path":"/scim/v2/Users"');
    expect(log).toContain('"path":"/invitations/accept"');
    expect(log).toMatch(/"level":40/);
    for (const secret of secrets) expect(log, 'a secret in the log').not.toContain(secret);
    for (const email of emails) expect(log, `${email} in the log`).not.toContain(email);
    expect(log).not.toMatch(/@logs\.test|%40logs\.test/);
  });
});
