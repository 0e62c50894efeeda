import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { sealSecret } from '../../src/core/secrets.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { startSmtpServer } from '../support/smtp.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { systemActor } from '../../src/core/actor.ts';
import { createTxtLookup } from '../../src/core/domain-dns.ts';
import { addDomain, verifyDomain } from '../../src/core/domains.ts';

let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
beforeAll(async () => {
  smtp = await startSmtpServer();
});
afterAll(async () => smtp.close());

async function queueInvitation(ctx: AppContext, orgId: string, email: string, token: string) {
  const payload = {
    invitationId: crypto.randomUUID(),
    email,
    invitedBy: 'Ada Admin',
    sealed: { token: sealSecret(token, ctx.config.serverSecret) },
  };
  const [row] =
    await ctx.sql`insert into outbox (organization_id, type, payload) values (${orgId}, 'invite.created', ${ctx.sql.json(payload)}) returning id`;
  return row!.id as string;
}

describe('invitation emails from the outbox', () => {
  let ctx: AppContext;
  beforeAll(async () => {
    ctx = await createTestContext({ SMTP_URL: smtp.url, MAIL_FROM: 'Acme <no-reply@acme.test>' });
  });
  afterAll(async () => ctx.database.close());

  it('are sent over SMTP once, with the accept link, and the sealed token is wiped afterwards', async () => {
    const orgId = (await createTestOrganization(ctx, 'mail')).organization.id;
    const eventId = await queueInvitation(ctx, orgId, 'new.person@mail.test', 'osinv_TOKEN123');
    const reconciler = createReconciler(ctx);
    await reconciler.events();
    await reconciler.events();
    const mails = smtp.messages.filter((m) => m.to.includes('new.person@mail.test'));
    expect(mails).toHaveLength(1);
    expect(mails[0]!.from).toBe('no-reply@acme.test');
    expect(mails[0]!.raw).toContain('Subject: You are invited to join mail');
    expect(mails[0]!.raw.replace(/=\r?\n/g, '')).toContain(
      'https://orgsync.test/invitations/accept?token=3Dosinv_TOKEN123',
    );
    const [event] = await ctx.sql`select payload from outbox where organization_id = ${orgId} and id = ${eventId}`;
    expect(event!.payload.sealed).toBeUndefined();
    const [d] =
      await ctx.sql`select status, kind, target from deliveries where organization_id = ${orgId} and event_id = ${eventId}`;
    expect(d).toEqual({ status: 'delivered', kind: 'email', target: 'new.person@mail.test' });
  });
});

describe('a lost domain', () => {
  let ctx: AppContext;
  let dns: TestDnsServer;
  beforeAll(async () => {
    dns = await startDnsServer();
    ctx = await createTestContext({ SMTP_URL: smtp.url, DNS_SERVERS: dns.server });
  });
  afterAll(async () => {
    await ctx.database.close();
    await dns.close();
  });

  it("emails each active owner once when the daily re-check finds the domain's record gone", async () => {
    const org = await createTestOrganization(ctx, 'lost');
    const owner = systemActor('admin');
    const added = await addDomain(ctx.sql, org.organization.id, 'lost.example', owner);
    dns.publish('lost.example', added.verificationToken);
    await verifyDomain(ctx.sql, org.organization.id, 'lost.example', owner, createTxtLookup([dns.server]));
    dns.unpublish('lost.example');
    const reconciler = createReconciler(ctx);
    expect(await reconciler.domains()).toMatchObject({ domainsChecked: 1, domainsLost: 1 });
    await reconciler.events();
    const mails = smtp.messages.filter((m) => m.raw.includes('lost.example is no longer verified'));
    expect(mails.map((m) => m.to)).toEqual([[org.owner.email]]);
    expect(mails[0]!.raw.replace(/=\r?\n/g, '')).toContain('https://orgsync.test/console/identity');
  });
});

describe('without SMTP configured', () => {
  it('logs the accept link instead, so a local user can follow it', async () => {
    const logs: Record<string, unknown>[] = [];
    const base = await createTestContext();
    const ctx = {
      ...base,
      log: pino(
        { level: 'info' },
        new Writable({ write: (c, _e, done) => (logs.push(JSON.parse(String(c))), done()) }),
      ),
    };
    try {
      const orgId = (await createTestOrganization(ctx, 'nosmtp')).organization.id;
      await queueInvitation(ctx, orgId, 'local@nosmtp.test', 'osinv_LOCAL');
      await createReconciler(ctx).events();
      expect(logs.find((l) => l.to === 'local@nosmtp.test')).toMatchObject({
        link: 'https://orgsync.test/invitations/accept?token=osinv_LOCAL',
      });
    } finally {
      await base.database.close();
    }
  });
});
