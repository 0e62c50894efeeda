import { loadConfig } from '../src/config.ts';
import { systemActor } from '../src/core/actor.ts';
import { changeGroupMembers } from '../src/core/groups.ts';
import { createLogger } from '../src/log.ts';
import { dispatchEvents } from '../src/sync/outbox.ts';
import { recomputeRolesOnEvents, repairMappedRoles } from '../src/sync/roles.ts';
import { benchDatabase, measure } from './support.ts';

const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 100_000);
const GROUPS = Number(process.env.BENCH_GROUPS ?? 1_000);
const GROUPS_PER_MEMBER = 3;

/**
 * Role recomputation for one organization of MEMBERS members in GROUPS groups (each member in
 * three), with a mapping on every tenth group (by id) and on ten group names.
 */
export async function benchRoles(): Promise<string[]> {
  const db = await benchDatabase();
  const { sql } = db;
  try {
    const [org] = await sql`insert into organizations (name, slug) values ('Bench', 'bench') returning id`;
    const orgId = org!.id as string;
    await sql`insert into accounts (email) select 'user' || i || '@bench.test' from generate_series(1, ${MEMBERS}) i`;
    await sql`insert into memberships (organization_id, account_id, status, source, roles)
              select ${orgId}, id, 'active', 'scim', '{member}' from accounts`;
    await sql`insert into groups (organization_id, source, display_name)
              select ${orgId}, 'scim', 'group-' || i from generate_series(1, ${GROUPS}) i`;
    await sql`
      insert into group_members (organization_id, group_id, account_id)
      select ${orgId}, g.id, a.id
      from (select id, row_number() over (order by id) as n from accounts) a
      cross join generate_series(0, ${GROUPS_PER_MEMBER - 1}) k
      join (select id, row_number() over (order by display_name) as n from groups) g
        on g.n = ((a.n * 7 + k * 331) % ${GROUPS}) + 1
      on conflict do nothing`;
    await sql`insert into group_role_mappings (organization_id, group_id, roles)
              select organization_id, id, '{viewer}' from groups where (substring(display_name from 7))::int % 10 = 0`;
    await sql`insert into group_role_mappings (organization_id, group_name, roles)
              select ${orgId}, 'GROUP-' || i, '{billing}' from generate_series(1, 10) i`;
    await sql`vacuum analyze`;
    const [{ links }] = (await sql`select count(*)::int as links from group_members`) as unknown as [{ links: number }];

    const first = await measure(() => repairMappedRoles(sql));
    const second = await measure(() => repairMappedRoles(sql));

    // One membership change in a large mapped group: cost of the event-driven recompute.
    const [big] =
      await sql`select group_id, count(*)::int as n from group_members group by group_id order by n desc limit 1`;
    const [outsider] = await sql`
      select m.account_id from memberships m
      where not exists (select 1 from group_members gm where gm.account_id = m.account_id and gm.group_id = ${big!.groupId}) limit 1`;
    await sql`update outbox set dispatched_at = now() where dispatched_at is null`;
    const actor = systemActor('system', 'bench');
    const one = await measure(async () => {
      await changeGroupMembers(sql, orgId, big!.groupId, { add: [outsider!.accountId] }, actor);
      return dispatchEvents(sql, [recomputeRolesOnEvents], {
        policy: loadConfig({}).reconciler.delivery,
        log: createLogger('silent'),
      });
    });

    return [
      `| role recompute, full pass, ${MEMBERS} members, ${GROUPS} groups, ${links} group links (first: ${first.result} members changed) | ${first.ms} ms | peak RSS ${first.peakRssMb} MB, heap growth ${first.heapGrowthMb} MB |`,
      `| role recompute, full pass again (${second.result} changed) | ${second.ms} ms | peak RSS ${second.peakRssMb} MB, heap growth ${second.heapGrowthMb} MB |`,
      `| one member added to a ${big!.n}-member mapped group, event dispatched and roles recomputed | ${one.ms} ms | |`,
    ];
  } finally {
    await db.drop();
  }
}
