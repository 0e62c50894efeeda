import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAccount } from '../../src/core/accounts.ts';
import { systemActor } from '../../src/core/actor.ts';
import { joinOrganization, suspendMember } from '../../src/core/memberships.ts';
import { createCustomRole } from '../../src/core/roles.ts';
import { responseXml, signAssertion } from './support/idp.ts';
import { postResponse, samlFixture, type SamlFixture } from './support/setup.ts';

let f: SamlFixture;
beforeAll(async () => {
  f = await samlFixture();
});
afterAll(async () => f.ctx.database.close());

const actor = systemActor('system', 'test');

async function member(email: string, roles: string[]) {
  const account = await ensureAccount(f.ctx.sql, { email });
  await joinOrganization(
    f.ctx.sql,
    { organizationId: f.organization.id, accountId: account.id, source: 'admin', roles },
    actor,
  );
  return account;
}

describe('whom a refused person is told to ask', () => {
  it('names the active members who may manage members, custom roles included, and nobody else', async () => {
    const organizationId = f.organization.id;
    await createCustomRole(
      f.ctx.sql,
      organizationId,
      { key: 'people-ops', name: 'People ops', permissions: ['members:manage', 'members:view'] },
      actor,
    );
    await createCustomRole(
      f.ctx.sql,
      organizationId,
      { key: 'auditor', name: 'Auditor', permissions: ['members:view'] },
      actor,
    );
    await member('alice@acme.test', ['people-ops']);
    await member('bob@acme.test', ['viewer']);
    await member('carol@acme.test', ['auditor']);
    const erin = await member('erin@acme.test', ['people-ops']);
    await suspendMember(f.ctx.sql, organizationId, erin.id, actor);

    const res = await postResponse(
      f,
      signAssertion(
        responseXml({ acsUrl: f.acsUrl, audience: f.audience, nameId: 'stranger@elsewhere.example' }),
        f.idp,
      ),
    );
    expect(res.status).toBe(403);
    expect(res.text).toContain('data-reason="not_allowed_to_join"');
    const contacts = [...res.text.matchAll(/href="mailto:([^"]+)"/g)].map((m) => m[1]);
    expect(contacts).toEqual(['alice@acme.test', 'owner@acme.test']);
  });
});
