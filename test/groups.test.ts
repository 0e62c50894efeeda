import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../src/context.ts';
import { ensureAccount } from '../src/core/accounts.ts';
import type { Actor } from '../src/core/actor.ts';
import {
  changeGroupMembers,
  createGroup,
  deleteGroup,
  findGroupByName,
  listGroupMemberIds,
  replaceGroupMembers,
  updateGroup,
} from '../src/core/groups.ts';
import { joinOrganization } from '../src/core/memberships.ts';
import { createTestContext, createTestOrganization } from './support/context.ts';

const actor: Actor = { type: 'scim_token', id: 't', name: 'okta', channel: 'scim' };
let ctx: AppContext;
let orgId: string;
let otherOrgId: string;
const people: string[] = [];

beforeAll(async () => {
  ctx = await createTestContext();
  orgId = (await createTestOrganization(ctx, 'groups')).organization.id;
  otherOrgId = (await createTestOrganization(ctx, 'elsewhere')).organization.id;
  for (let i = 0; i < 5; i++) {
    const a = await ensureAccount(ctx.sql, { email: `p${i}@groups.test` });
    await joinOrganization(ctx.sql, { organizationId: orgId, accountId: a.id, source: 'scim' }, actor);
    people.push(a.id);
  }
});
afterAll(async () => ctx.database.close());

describe('groups', () => {
  it('create, rename, find by name case-insensitively, refuse duplicates', async () => {
    const g = await createGroup(ctx.sql, { organizationId: orgId, source: 'scim', displayName: 'Engineering' }, actor);
    await expect(
      createGroup(ctx.sql, { organizationId: orgId, source: 'scim', displayName: 'engineering' }, actor),
    ).rejects.toThrow(/already exists/);
    // The same name is fine for another source or another organization.
    await createGroup(ctx.sql, { organizationId: orgId, source: 'local', displayName: 'Engineering' }, actor);
    await createGroup(ctx.sql, { organizationId: otherOrgId, source: 'scim', displayName: 'Engineering' }, actor);
    const renamed = await updateGroup(ctx.sql, orgId, g.id, { displayName: 'Eng' }, actor);
    expect(renamed).toMatchObject({ displayName: 'Eng', version: 2 });
    expect((await findGroupByName(ctx.sql, orgId, 'scim', 'ENG'))?.id).toBe(g.id);
    await expect(updateGroup(ctx.sql, otherOrgId, g.id, { displayName: 'x' }, actor)).rejects.toThrow(/not found/);
  });

  it('adds and removes members, writing only the difference, and announces it', async () => {
    const g = await createGroup(ctx.sql, { organizationId: orgId, source: 'scim', displayName: 'Sales' }, actor);
    expect(await changeGroupMembers(ctx.sql, orgId, g.id, { add: [people[0]!, people[1]!] }, actor)).toEqual({
      added: expect.arrayContaining([people[0], people[1]]),
      removed: [],
    });
    expect(await changeGroupMembers(ctx.sql, orgId, g.id, { add: [people[0]!], remove: [people[1]!] }, actor)).toEqual({
      added: [],
      removed: [people[1]],
    });
    expect(await replaceGroupMembers(ctx.sql, orgId, g.id, [people[2]!, people[3]!], actor)).toEqual({
      added: expect.arrayContaining([people[2], people[3]]),
      removed: [people[0]],
    });
    expect((await listGroupMemberIds(ctx.sql, orgId, g.id, { limit: 10 })).sort()).toEqual(
      [people[2], people[3]].sort(),
    );
    const events =
      await ctx.sql`select payload from outbox where organization_id = ${orgId} and type = 'group.members_changed' and payload->>'groupId' = ${g.id}`;
    expect(events).toHaveLength(3);
  });

  it('refuses strangers as a whole and changes nothing', async () => {
    const g = await createGroup(ctx.sql, { organizationId: orgId, source: 'local', displayName: 'Ops' }, actor);
    const stranger = await ensureAccount(ctx.sql, { email: 'stranger@groups.test' });
    await expect(changeGroupMembers(ctx.sql, orgId, g.id, { add: [people[0]!, stranger.id] }, actor)).rejects.toThrow(
      /not members/,
    );
    await expect(changeGroupMembers(ctx.sql, orgId, g.id, { add: ['nope'] }, actor)).rejects.toThrow(/not members/);
    expect(await listGroupMemberIds(ctx.sql, orgId, g.id, { limit: 10 })).toEqual([]);
  });

  it('concurrent member changes to one group lose nothing', async () => {
    const g = await createGroup(ctx.sql, { organizationId: orgId, source: 'scim', displayName: 'Race' }, actor);
    await Promise.all(people.map((p) => changeGroupMembers(ctx.sql, orgId, g.id, { add: [p] }, actor)));
    expect(await listGroupMemberIds(ctx.sql, orgId, g.id, { limit: 10 })).toHaveLength(people.length);
    // Every change is audited and announced once.
    const [row] =
      await ctx.sql`select count(*)::int as n from outbox where type = 'group.members_changed' and payload->>'groupId' = ${g.id}`;
    expect(row!.n).toBe(people.length);
  });

  it('deleting a group reports who lost it', async () => {
    const g = await createGroup(ctx.sql, { organizationId: orgId, source: 'scim', displayName: 'Doomed' }, actor);
    await changeGroupMembers(ctx.sql, orgId, g.id, { add: [people[4]!] }, actor);
    await deleteGroup(ctx.sql, orgId, g.id, actor);
    const [event] =
      await ctx.sql`select payload from outbox where organization_id = ${orgId} and type = 'group.deleted' and payload->>'groupId' = ${g.id}`;
    expect(event!.payload.removed).toEqual([people[4]]);
    await expect(deleteGroup(ctx.sql, orgId, g.id, actor)).rejects.toThrow(/not found/);
  });
});
