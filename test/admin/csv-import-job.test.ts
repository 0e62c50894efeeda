import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { systemActor } from '../../src/core/actor.ts';
import { createGroup } from '../../src/core/groups.ts';
import { runInvitationImport, startInvitationImport } from '../../src/core/invitation-import-jobs.ts';
import { createApp } from '../../src/app.ts';
import { Reconciler } from '../../src/sync/reconciler.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';

let ctx: AppContext;
let app: Express;
let a: Awaited<ReturnType<typeof createTestOrganization>>;
let b: Awaited<ReturnType<typeof createTestOrganization>>;

beforeAll(async () => {
  ctx = await createTestContext();
  app = createApp(ctx);
  a = await createTestOrganization(ctx, 'job');
  b = await createTestOrganization(ctx, 'job-other');
  for (const name of ['Engineering', 'Sales'])
    await createGroup(
      ctx.sql,
      { organizationId: a.organization.id, source: 'local', displayName: name },
      systemActor('admin'),
    );
});
afterAll(async () => ctx.database.close());

const upload = (csv: string, query = '') =>
  request(app)
    .post(`/api/invitations/imports${query}`)
    .set('authorization', `Bearer ${a.adminKey}`)
    .set('content-type', 'text/csv')
    .send(csv);
const job = (id: string, key = a.adminKey) =>
  request(app).get(`/api/invitations/imports/${id}`).set('authorization', `Bearer ${key}`);

type Job = {
  status: string;
  done: number;
  total: number;
  invited: number;
  skipped: number;
  rows: { row: number; status: string }[];
};

/** Polls a job to its end, checking every answer on the way: progress never goes back, results match it. */
async function follow(id: string): Promise<Job> {
  const seen: Job[] = [];
  await expect
    .poll(
      async () => {
        const answer = (await job(id).expect(200)).body as Job;
        seen.push(answer);
        return answer.status;
      },
      { timeout: 120_000, interval: 100 },
    )
    .not.toBe('running');
  for (const [i, answer] of seen.entries()) {
    expect(answer.rows).toHaveLength(answer.done);
    expect(answer.done).toBeLessThanOrEqual(answer.total);
    if (i > 0) expect(answer.done).toBeGreaterThanOrEqual(seen[i - 1]!.done);
  }
  return seen.at(-1)!;
}

/** 60 rows (three batches): row 10 a bad address, row 20 repeats row 2, row 30 an unknown group. */
function sixtyRows(prefix: string): string {
  const lines = ['email,group membership'];
  for (let i = 0; i < 60; i++) {
    const row = i + 2;
    const email = row === 10 ? 'not-an-address' : row === 20 ? `${prefix}0@job.test` : `${prefix}${i}@job.test`;
    lines.push(`${email},${row === 30 ? 'Marketing' : '"Engineering, Sales"'}`);
  }
  return lines.join('\n');
}

describe('CSV import as a background job', () => {
  it('answers 202 with the job at once; progress grows to the total; the end lists every row with its reasons; a re-run invites nobody twice', async () => {
    const csv = sixtyRows('p');
    const started = await upload(csv, '?roles=viewer&fileName=people.csv').expect(202);
    expect(started.body).toMatchObject({ status: 'running', fileName: 'people.csv', total: 60, done: 0, rows: [] });
    expect(started.headers.location).toBe(`/api/invitations/imports/${started.body.id}`);

    const done = await follow(started.body.id);
    expect(done).toMatchObject({ status: 'done', total: 60, done: 60, invited: 57, skipped: 3 });
    expect(done.rows.map((r) => r.row)).toEqual(Array.from({ length: 60 }, (_, i) => i + 2));
    expect(done.rows.filter((r) => r.status === 'skipped')).toEqual([
      { row: 10, email: 'not-an-address', status: 'skipped', errors: ['invalid email format'] },
      { row: 20, email: 'p0@job.test', status: 'skipped', errors: ['duplicate in file'] },
      { row: 30, email: 'p28@job.test', status: 'skipped', errors: ['unknown group(s): Marketing'] },
    ]);
    const [invited] = await ctx.sql<{ roles: string[]; groups: number }[]>`
      select m.roles, cardinality(i.group_ids) as groups from invitations i
      join memberships m on m.organization_id = i.organization_id and m.account_id = i.account_id
      where i.organization_id = ${a.organization.id} and i.email = 'p1@job.test'`;
    expect(invited).toEqual({ roles: ['viewer'], groups: 2 });

    const again = await follow((await upload(csv).expect(202)).body.id);
    expect(again).toMatchObject({ status: 'done', invited: 0, skipped: 60 });
    expect(again.rows[0]).toMatchObject({ row: 2, status: 'skipped', errors: ['already invited'] });
    const [{ n }] = await ctx.sql<[{ n: number }]>`
      select count(*)::int as n from invitations where organization_id = ${a.organization.id} and email like 'p%@job.test'`;
    expect(n).toBe(57);
  });

  it('offers an example file, which imports as is', async () => {
    const example = await request(app).get('/api/invitations/imports/example.csv').expect(200);
    expect(example.headers['content-type']).toMatch(/^text\/csv/);
    expect(example.headers['content-disposition']).toMatch(/attachment; filename="orgsync-import-example.csv"/);
    expect(example.text.split('\r\n')[0]).toBe('email,group membership');
    const done = await follow((await upload(example.text).expect(202)).body.id);
    expect(done).toMatchObject({ status: 'done', total: 2, invited: 2, skipped: 0 });
  });

  it('a job whose worker died is resumed by the next poll; two workers at once process each row exactly once', async () => {
    // Stored but never run, as if its instance died right after the upload.
    const orphan = await startInvitationImport(ctx.sql, a.organization.id, sixtyRows('o'), {}, systemActor('admin'));
    // Not stale yet: a poll leaves it to its (presumed live) worker.
    expect((await job(orphan.id).expect(200)).body).toMatchObject({ status: 'running', done: 0 });
    await ctx.sql`update invitation_imports set updated_at = now() - interval '1 minute' where id = ${orphan.id}`;
    expect(await follow(orphan.id)).toMatchObject({ status: 'done', invited: 57 });

    const shared = await startInvitationImport(ctx.sql, a.organization.id, sixtyRows('s'), {}, systemActor('admin'));
    const run = () => runInvitationImport(ctx.sql, ctx.config.serverSecret, a.organization.id, shared.id);
    await Promise.all([run(), run(), run()]);
    const done = (await job(shared.id).expect(200)).body as Job;
    expect(done).toMatchObject({ status: 'done', done: 60, invited: 57 });
    expect(done.rows.map((r) => r.row)).toEqual(Array.from({ length: 60 }, (_, i) => i + 2));
    const [{ n }] = await ctx.sql<[{ n: number }]>`
      select count(*)::int as n from audit_log where organization_id = ${a.organization.id}
        and action = 'member.invited' and details::text like '%s1@job.test%'`;
    expect(n).toBeLessThanOrEqual(1);
    const [{ m }] = await ctx.sql<[{ m: number }]>`
      select count(*)::int as m from invitations where organization_id = ${a.organization.id} and email like 's%@job.test'`;
    expect(m).toBe(57);
  });

  it('another organization cannot see a job; a bad file or an unknown role starts none', async () => {
    const started = await upload('email\nonly@job.test').expect(202);
    expect((await job(started.body.id, b.adminKey).expect(404)).body.error).toBe('not_found');
    await job('not-a-uuid').expect(404);
    const viewer = await request(app)
      .post('/api/invitations/imports')
      .set('authorization', `Bearer ${b.adminKey}`)
      .set('content-type', 'text/csv')
      .send('email\nx@job.test');
    expect(viewer.status).toBe(202);
    expect((await job(viewer.body.id).expect(404)).body.error).toBe('not_found');
    const before = await ctx.sql`select id from invitation_imports`;
    await upload('name\nann').expect(400);
    await upload('email\nx@job.test', '?roles=no-such-role').expect(400);
    expect(await ctx.sql`select id from invitation_imports`).toHaveLength(before.length);
    await follow(started.body.id);
  });
});

describe('housekeeping', () => {
  it('deletes jobs finished more than 30 days ago (done or failed) and keeps recent and running ones', async () => {
    const org = a.organization.id;
    const finishedJob = async (email: string, ageDays: number, status: 'done' | 'failed') => {
      const started = await startInvitationImport(ctx.sql, org, `email\n${email}`, {}, systemActor('admin'));
      await runInvitationImport(ctx.sql, ctx.config.serverSecret, org, started.id);
      await ctx.sql`
        update invitation_imports set status = ${status}, finished_at = now() - make_interval(days => ${ageDays})
        where organization_id = ${org} and id = ${started.id} and status = 'done'`;
      return started.id;
    };
    const old = [
      await finishedJob('old-done@job.test', 31, 'done'),
      await finishedJob('old-failed@job.test', 45, 'failed'),
    ];
    const recent = [await finishedJob('recent@job.test', 29, 'done'), await finishedJob('new@job.test', 0, 'done')];
    // A running job is kept however old: it still owes its rows (a poll resumes it).
    const running = await startInvitationImport(ctx.sql, org, 'email\nrunning@job.test', {}, systemActor('admin'));
    await ctx.sql`update invitation_imports set created_at = now() - interval '60 days', updated_at = now() - interval '60 days'
                  where organization_id = ${org} and id = ${running.id}`;

    expect((await new Reconciler(ctx).housekeeping()).invitationImportsPruned).toBe(2);
    const left = (
      await ctx.sql`select id from invitation_imports where id = any(${[...old, ...recent, running.id]}::uuid[])`
    ).map((r) => r.id as string);
    expect(left.sort()).toEqual([...recent, running.id].sort());
    for (const id of old) expect((await job(id).expect(404)).body.error).toBe('not_found');
    expect((await new Reconciler(ctx).housekeeping()).invitationImportsPruned).toBe(0);
  });
});
