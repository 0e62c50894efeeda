import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { systemActor } from '../../src/core/actor.ts';
import { issueCredential } from '../../src/core/credentials.ts';
import { createGroup } from '../../src/core/groups.ts';
import { createApp } from '../../src/app.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

let ctx: AppContext;
let app: Express;
let a: Awaited<ReturnType<typeof createTestOrganization>>;

beforeAll(async () => {
  ctx = await createTestContext();
  app = createApp(ctx);
  a = await createTestOrganization(ctx, 'csv');
  for (const name of ['Engineering', 'Sales'])
    await createGroup(
      ctx.sql,
      { organizationId: a.organization.id, source: 'local', displayName: name },
      systemActor('admin'),
    );
});
afterAll(async () => ctx.database.close());

/** The background import (what the console uses); `/api/invitations/import` is the older one-request form. */
const upload = (csv: string, query = '', path = '/api/invitations/imports') =>
  request(app)
    .post(`${path}${query}`)
    .set('authorization', `Bearer ${a.adminKey}`)
    .set('content-type', 'text/csv')
    .send(csv);

/** 1,000 rows: every 50th has a bad address, every 77th repeats row 2, every 91st names an unknown group, row 500 is the owner. */
function thousandRows(): { csv: string; bad: Map<number, string> } {
  const bad = new Map<number, string>();
  const lines = ['Email,Group Membership,Department'];
  for (let i = 0; i < 1000; i++) {
    const row = i + 2;
    let email = `person${i}@csv.test`;
    let groups = i % 2 ? '"engineering, SALES"' : 'Sales';
    if (i > 0 && i % 50 === 0) {
      email = `person${i}-at-csv.test`;
      bad.set(row, 'invalid email format');
    } else if (i > 0 && i % 77 === 0) {
      email = 'PERSON0@csv.test';
      bad.set(row, 'duplicate in file');
    } else if (i > 0 && i % 91 === 0) {
      groups = 'Marketing';
      bad.set(row, 'unknown group(s): Marketing');
    } else if (i === 500) {
      email = 'owner@csv.test';
      bad.set(row, 'already a member');
    }
    lines.push(`${email},${groups},ignored`);
  }
  return { csv: lines.join('\n'), bad };
}

/** Polls the job until it ends; a 1,000-row file takes a while on a loaded machine. */
async function finished(id: string) {
  const get = () => request(app).get(`/api/invitations/imports/${id}`).set('authorization', `Bearer ${a.adminKey}`);
  await expect
    .poll(async () => (await get().expect(200)).body.status, { timeout: 170_000, interval: 250 })
    .not.toBe('running');
  return get();
}

describe('CSV invitation import', () => {
  it('invites the valid rows of a 1,000-row file and reports every skipped row with its reason; a second upload invites nobody twice', async () => {
    const { csv, bad } = thousandRows();
    const started = await upload(csv, '?roles=viewer').expect(202);
    expect(started.body).toMatchObject({ status: 'running', total: 1000 });
    const first = await finished(started.body.id);
    expect(first.body).toMatchObject({
      status: 'done',
      total: 1000,
      done: 1000,
      invited: 1000 - bad.size,
      skipped: bad.size,
    });
    const skipped = first.body.rows.filter((r: { status: string }) => r.status === 'skipped');
    expect(new Map(skipped.map((r: { row: number; errors: string[] }) => [r.row, r.errors.join('; ')]))).toEqual(bad);
    const [{ n }] =
      (await ctx.sql`select count(*)::int as n from invitations where organization_id = ${a.organization.id} and status = 'pending'`) as unknown as [
        { n: number },
      ];
    expect(n).toBe(1000 - bad.size);
    const [eng] =
      await ctx.sql`select roles from memberships m join accounts ac on ac.id = m.account_id where ac.email = 'person1@csv.test'`;
    expect(eng!.roles).toEqual(['viewer']);
    const [inv] =
      await ctx.sql`select cardinality(group_ids) as groups from invitations where email = 'person1@csv.test'`;
    expect(inv!.groups).toBe(2);

    // Every pending row of the members list carries its invitation, also past the 500 that
    // GET /api/invitations lists (what the console used to look them up in).
    const pending: { invitation: { id: string; expiresAt: string } | null }[] = [];
    for (let after = ''; ;) {
      const page = await request(app)
        .get(`/api/members?status=pending&limit=200${after ? `&after=${after}` : ''}`)
        .set('authorization', `Bearer ${a.adminKey}`)
        .expect(200);
      pending.push(...page.body.items);
      if (!page.body.next) break;
      after = page.body.next;
    }
    expect(pending).toHaveLength(1000 - bad.size);
    expect(
      pending.every((m) => m.invitation && m.invitation.id && !Number.isNaN(Date.parse(m.invitation.expiresAt))),
    ).toBe(true);
    expect(new Set(pending.map((m) => m.invitation!.id)).size).toBe(pending.length);

    const second = await finished((await upload(csv).expect(202)).body.id);
    expect(second.body.invited).toBe(0);
    expect(second.body.rows[1]).toMatchObject({ row: 3, status: 'skipped', errors: ['already invited'] });
    const [{ m }] =
      (await ctx.sql`select count(*)::int as m from invitations where organization_id = ${a.organization.id}`) as unknown as [
        { m: number },
      ];
    expect(m).toBe(1000 - bad.size);

    // The one-request form (kept for older scripts) answers rows the same way.
    const legacy = await upload(csv.split('\n').slice(0, 4).join('\n'), '', '/api/invitations/import').expect(200);
    expect(legacy.body).toMatchObject({ total: 3, invited: 0 });
    expect(legacy.body.rows).toEqual(second.body.rows.slice(0, 3));
  }, 240_000);

  it('a viewer key gets 403 naming the missing permission; an admin key cannot import with a role beyond its own; nothing is invited', async () => {
    const key = async (roles: string[]) =>
      (
        await issueCredential(
          ctx.sql,
          ctx.config.serverSecret,
          { organizationId: a.organization.id, kind: 'admin', name: roles.join(), roles },
          systemActor('cli'),
        )
      ).secret;
    const csv = 'email\nviewer-import@csv.test';
    for (const path of ['/api/invitations/imports', '/api/invitations/import']) {
      const send = (k: string, query = '') =>
        request(app)
          .post(`${path}${query}`)
          .set('authorization', `Bearer ${k}`)
          .set('content-type', 'text/csv')
          .send(csv);
      const viewer = await send(await key(['viewer'])).expect(403);
      expect(viewer.body).toEqual({
        error: 'forbidden',
        message: 'missing permission: members:manage',
        details: { missing: ['members:manage'] },
      });
      const admin = await send(await key(['admin']), '?roles=owner').expect(403);
      expect(admin.body.details).toEqual({ missing: ['billing:manage'] });
      expect(await ctx.sql`select 1 from invitations where email = 'viewer-import@csv.test'`).toHaveLength(0);
    }
    expect(
      await ctx.sql`select 1 from invitation_imports where pending_rows::text like '%viewer-import@%'`,
    ).toHaveLength(0);
  });

  it('refuses files that are too long, have no email column, or are not CSV', async () => {
    const long = ['email', ...Array.from({ length: 1001 }, (_, i) => `x${i}@csv.test`)].join('\n');
    const jobsBefore = await ctx.sql`select id from invitation_imports where organization_id = ${a.organization.id}`;
    for (const path of ['/api/invitations/imports', '/api/invitations/import']) {
      expect((await upload(long, '', path).expect(400)).body.message).toMatch(/at most 1000 rows/);
      expect((await upload('name\nann', '', path).expect(400)).body.message).toMatch(/"email" column/);
      expect((await upload('email\n"unterminated', '', path).expect(400)).body.message).toMatch(/not valid CSV/);
      const json = await request(app).post(path).set('authorization', `Bearer ${a.adminKey}`).send({ csv: 'x' });
      expect([json.status, json.body.message]).toEqual([
        415,
        'send the CSV file as the body with content-type text/csv',
      ]);
    }
    // A refused file starts no job.
    expect(await ctx.sql`select id from invitation_imports where organization_id = ${a.organization.id}`).toHaveLength(
      jobsBefore.length,
    );
  });
});
