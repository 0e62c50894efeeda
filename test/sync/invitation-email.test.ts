import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import type { AppContext } from '../../src/context.ts';
import { inviteMembers } from '../../src/core/invitations.ts';
import { createReconciler } from '../../src/sync/index.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { mailParts, startSmtpServer } from '../support/smtp.ts';

let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let ctx: AppContext;
beforeAll(async () => {
  smtp = await startSmtpServer();
  ctx = await createTestContext({ SMTP_URL: smtp.url });
});
afterAll(async () => {
  await ctx.database.close();
  await smtp.close();
});

async function mailTo(to: string) {
  await createReconciler(ctx).events();
  const mail = smtp.messages.filter((m) => m.to.includes(to)).pop();
  expect(mail).toBeDefined();
  return { raw: mail!.raw, ...mailParts(mail!.raw) };
}

const withoutTags = (html: string) => html.replace(/<[^>]+>/g, '');

async function expiryOf(email: string): Promise<Date> {
  const [row] = await ctx.sql<{ expiresAt: Date }[]>`select expires_at from invitations where email = ${email}`;
  return row!.expiresAt;
}

describe('the invitation email', () => {
  it('names the member who invited, the roles, the UTC expiry and the organization, as HTML and plain text', async () => {
    const org = await createTestOrganization(ctx, 'mail-member');
    await ctx.sql`update organizations set name = 'Acme Corp' where id = ${org.organization.id}`;
    await ctx.sql`update accounts set given_name = 'Ada', family_name = 'Lovelace' where id = ${org.owner.id}`;
    const actor = { type: 'account' as const, id: org.owner.id, name: org.owner.email, channel: 'admin' as const };
    await inviteMembers(
      ctx.sql,
      ctx.config.serverSecret,
      org.organization.id,
      [{ email: 'new@mail-member.test', roles: ['billing', 'viewer'] }],
      actor,
    );
    const mail = await mailTo('new@mail-member.test');
    expect(mail.raw).toMatch(/content-type: multipart\/alternative/i);
    expect(mail.raw.replace(/\r\n(?=[ \t])/g, '')).toContain(
      'Subject: Ada Lovelace (owner@mail-member.test) invited you to join Acme Corp',
    );

    const expires = await expiryOf('new@mail-member.test');
    const day = expires.toLocaleDateString('en-GB', {
      timeZone: 'UTC',
      day: 'numeric',
      month: 'long',
      year: 'numeric',
    });
    const time = expires.toISOString().slice(11, 16);
    for (const part of [mail.text!, withoutTags(mail.html!)]) {
      expect(part).toContain('Ada Lovelace (owner@mail-member.test)');
      expect(part).toContain('Acme Corp');
      expect(part).toContain('Billing, Viewer');
      expect(part).toContain(day);
      expect(part).toContain(`${time} UTC`);
      expect(part).toMatch(/https:\/\/orgsync\.test\/invitations\/accept\?token=osinv_[\w-]+/);
    }
    expect(mail.text).not.toContain('<');
    expect(mail.html).toContain('<a href="https://orgsync.test/invitations/accept?token=osinv_');
  });

  it('names the organization, never the API key, when a key invited', async () => {
    const org = await createTestOrganization(ctx, 'mail-key');
    await ctx.sql`update organizations set name = 'Key Org' where id = ${org.organization.id}`;
    await request(createApp(ctx))
      .post('/api/invitations')
      .set('authorization', `Bearer ${org.adminKey}`)
      .send({ emails: 'keyed@mail-key.test' })
      .expect(201);
    const mail = await mailTo('keyed@mail-key.test');
    expect(mail.raw).toContain('Subject: You are invited to join Key Org');
    for (const part of [mail.text!, withoutTags(mail.html!)]) {
      expect(part).toContain('Key Org invited you to join its organization');
      expect(part).toContain('Member'); // the default role
      expect(part).not.toMatch(/\bsetup\b/); // the admin key's name
    }
  });

  it("escapes a hostile inviter's and organization's name in the HTML part", async () => {
    const org = await createTestOrganization(ctx, 'mail-evil');
    await ctx.sql`update organizations set name = ${'<b>Evil</b> & "Co"'} where id = ${org.organization.id}`;
    await ctx.sql`update accounts set given_name = ${'<script>alert(1)</script>'}, family_name = ${"O'Brien"}
                  where id = ${org.owner.id}`;
    const actor = { type: 'account' as const, id: org.owner.id, name: org.owner.email, channel: 'admin' as const };
    await inviteMembers(ctx.sql, ctx.config.serverSecret, org.organization.id, [{ email: 'x@mail-evil.test' }], actor);
    const mail = await mailTo('x@mail-evil.test');
    expect(mail.html).not.toContain('<script>');
    expect(mail.html).not.toContain('<b>Evil');
    expect(mail.html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; O&#39;Brien');
    expect(mail.html).toContain('&lt;b&gt;Evil&lt;/b&gt; &amp; &quot;Co&quot;');
    expect(mail.text).toContain("<script>alert(1)</script> O'Brien");
  });
});
