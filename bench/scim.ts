import type { ChildProcess } from 'node:child_process';
import { connect, type Sql } from '../src/storage/database.ts';
import {
  benchDatabase,
  benchOrganization,
  client,
  CONCURRENCY,
  processCpuMs,
  runTimed,
  startServer,
  stopServer,
} from './support.ts';

/**
 * SCIM under load, against a real orgsync process (its own event loop) on the PostgreSQL of
 * DATABASE_URL, at CONCURRENCY requests in flight. The same run measures raw PostgreSQL doing
 * the single statements underneath (one-row INSERT, indexed point SELECT, one-row UPDATE) at
 * the same concurrency through the `postgres` client: the ceiling each SCIM workload is a
 * fraction of.
 */
const USERS = Number(process.env.BENCH_USERS ?? 100_000);
const CREATES = Number(process.env.BENCH_CREATES ?? 10_000);
const LOOKUPS = Number(process.env.BENCH_LOOKUPS ?? 20_000);
const GROUP_SIZE = Number(process.env.BENCH_GROUP_SIZE ?? 50_000);
const DEACTIVATIONS = Number(process.env.BENCH_DEACTIVATIONS ?? 10_000);
const PAGES = Number(process.env.BENCH_PAGES ?? 1_000);

export async function benchScim(): Promise<string[]> {
  const db = await benchDatabase();
  const rows: string[] = [];
  let server: ChildProcess | undefined;
  try {
    const { organization, token } = await benchOrganization(db.sql);
    const started = await startServer(db.url);
    server = started.child;
    const pid = server.pid!;
    const scim = client(started.port, token.secret);

    const ceilings = await rawCeilings(db.url, organization.id);
    const row = (name: string, r: Rate, ceiling?: number) =>
      `| ${name} | ${r.count} in ${r.ms} ms | ${Math.round(r.perSecond)}/s | ${ceiling ? `${((100 * r.perSecond) / ceiling).toFixed(1)}% of ${Math.round(ceiling)}/s` : ''} | ${r.cpuMsPerRequest === undefined ? '' : `${r.cpuMsPerRequest.toFixed(2)} ms`} |`;
    // The server's own CPU time over a workload, per request (from /proc, not a timer).
    const run = async (count: number, op: (i: number) => Promise<unknown>): Promise<Rate> => {
      const before = processCpuMs(pid);
      const r = await runWorkload(count, op);
      return { ...r, cpuMsPerRequest: (processCpuMs(pid) - before) / count };
    };

    const creates = await run(CREATES, (i) => scim('POST', '/Users', user(i), 201));
    rows.push(row(`create user (POST /Users), ${CREATES} users`, creates, ceilings.insert));

    await bulkUsers(db.sql, organization.id, CREATES, USERS);
    const lookups = await run(LOOKUPS, (i) =>
      scim(
        'GET',
        `/Users?filter=${encodeURIComponent(`userName eq "user${(i * 7919) % USERS}@bench.test"`)}`,
        undefined,
        200,
      ),
    );
    rows.push(row(`userName eq lookup at ${USERS} users`, lookups, ceilings.select));

    const pages = await run(PAGES, (i) =>
      scim('GET', `/Users?startIndex=${(i % 100) * 100 + 1}&count=100`, undefined, 200),
    );
    rows.push(row(`list page of 100 (startIndex 1..9901) at ${USERS} users`, pages, ceilings.select));

    const ids = (
      await db.sql<
        { accountId: string }[]
      >`select account_id from scim_users order by account_id limit ${Math.max(GROUP_SIZE, DEACTIVATIONS)}`
    ).map((r) => r.accountId);
    const group = (await scim('POST', '/Groups', { displayName: 'Everyone' }, 201)) as { id: string };
    const addsCpuBefore = processCpuMs(pid);
    const adds = await runTimed(GROUP_SIZE, (i) =>
      scim('PATCH', `/Groups/${group.id}`, patch([{ op: 'add', path: 'members', value: [{ value: ids[i] }] }]), 204),
    );
    const first = rate(adds.slice(0, 1000));
    const last = rate(adds.slice(-1000));
    rows.push(row(`group member add (PATCH), first 1000 of ${GROUP_SIZE}`, first, ceilings.update));
    rows.push(
      row(`group member add (PATCH), last 1000 (group at ${GROUP_SIZE - 1000}+ members)`, last, ceilings.update),
    );
    rows.push(`| last 1000 adds vs first 1000 | | | ${((100 * last.perSecond) / first.perSecond).toFixed(0)}% | |`);
    rows.push(
      `| group member add (PATCH), all ${GROUP_SIZE} | | | | ${((processCpuMs(pid) - addsCpuBefore) / GROUP_SIZE).toFixed(2)} ms |`,
    );

    const deactivations = await run(DEACTIVATIONS, (i) =>
      scim('PATCH', `/Users/${ids[i]}`, patch([{ op: 'replace', value: { active: false } }]), 200),
    );
    rows.push(row(`deactivate user (PATCH active=false) at ${USERS} users`, deactivations, ceilings.update));

    rows.push(row('raw PostgreSQL: one-row INSERT', ceilings.insertRate));
    rows.push(row(`raw PostgreSQL: indexed point SELECT at ${USERS} users`, ceilings.selectRate));
    rows.push(row('raw PostgreSQL: one-row UPDATE', ceilings.updateRate));
    return rows;
  } finally {
    await stopServer(server);
    await db.drop();
  }
}

export const user = (i: number) => ({
  schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
  userName: `user${i}@bench.test`,
  name: { givenName: `Given${i}`, familyName: 'Bench' },
  emails: [{ primary: true, type: 'work', value: `user${i}@bench.test` }],
  externalId: `ext-${i}`,
  active: true,
});
export const patch = (Operations: unknown[]) => ({
  schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
  Operations,
});

/** Fills the organization up to `total` provisioned users with set-based SQL (the same rows POST /Users writes). */
export async function bulkUsers(sql: Sql, organizationId: string, from: number, total: number): Promise<void> {
  await sql`insert into accounts (email, given_name, family_name)
            select 'user' || i || '@bench.test', 'Given' || i, 'Bench' from generate_series(${from}::int, ${total - 1}::int) i`;
  await sql`insert into scim_users (organization_id, account_id, user_name, external_id, emails, resource)
            select ${organizationId}, a.id, a.email, 'ext-' || a.id, array[a.email],
                   jsonb_build_object('name', jsonb_build_object('givenName', a.given_name, 'familyName', 'Bench'),
                                      'emails', jsonb_build_array(jsonb_build_object('value', a.email, 'type', 'work', 'primary', true)))
            from accounts a where a.email like 'user%@bench.test'
            on conflict do nothing`;
  await sql`insert into memberships (organization_id, account_id, status, source, roles)
            select ${organizationId}, account_id, 'active', 'scim', '{member}' from scim_users
            on conflict do nothing`;
  await sql`analyze`;
}

interface Rate {
  count: number;
  ms: number;
  perSecond: number;
  /** orgsync's CPU time per request over the workload. */
  cpuMsPerRequest?: number;
}

/** Runs `count` operations with CONCURRENCY in flight. */
async function runWorkload(count: number, op: (i: number) => Promise<unknown>): Promise<Rate> {
  return rate(await runTimed(count, op));
}

/** The rate of a slice of finish times (the first element is where the slice starts). */
function rate(times: number[]): Rate {
  const sorted = [...times].sort((a, b) => a - b);
  const ms = sorted[sorted.length - 1]! - sorted[0]!;
  const count = times.length - 1;
  return { count, ms: Math.round(ms), perSecond: (count * 1000) / ms };
}

async function rawCeilings(url: string, organizationId: string) {
  const sql = connect(url, CONCURRENCY);
  try {
    await sql`create table bench_insert (id uuid primary key default gen_random_uuid(), organization_id uuid not null, v text not null)`;
    const insertRate = await runWorkload(
      CREATES,
      (i) => sql`insert into bench_insert (organization_id, v) values (${organizationId}, ${`row ${i}`})`,
    );
    // The point SELECT and UPDATE run on a table of USERS rows, as the SCIM lookups do.
    await sql`create table bench_rows (organization_id uuid not null, id integer not null, name text not null, active boolean not null default true,
                                        primary key (organization_id, id))`;
    await sql`insert into bench_rows (organization_id, id, name) select ${organizationId}, i, 'user' || i || '@bench.test' from generate_series(0, ${USERS - 1}::int) i`;
    await sql`create unique index on bench_rows (organization_id, lower(name))`;
    await sql`analyze bench_rows`;
    const selectRate = await runWorkload(
      LOOKUPS,
      (i) =>
        sql`select * from bench_rows where organization_id = ${organizationId} and lower(name) = lower(${`user${(i * 7919) % USERS}@bench.test`})`,
    );
    const updateRate = await runWorkload(
      DEACTIVATIONS,
      (i) => sql`update bench_rows set active = false where organization_id = ${organizationId} and id = ${i}`,
    );
    return {
      insertRate,
      selectRate,
      updateRate,
      insert: insertRate.perSecond,
      select: selectRate.perSecond,
      update: updateRate.perSecond,
    };
  } finally {
    await sql.end();
  }
}
