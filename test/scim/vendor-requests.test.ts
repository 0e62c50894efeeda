/**
 * The SCIM filter and PATCH parsers on requests shaped as Okta, Entra ID and other IdPs send them
 * (fixtures/vendor-requests.ts): no database and no network, so a vendor's quirk that breaks a
 * parser fails here first, naming the vendor.
 */
import { describe, expect, it } from 'vitest';
import { parseFilter, type Filter } from '../../src/scim/filter.ts';
import { groupChange } from '../../src/scim/groups.ts';
import { normalizeUser, type JsonObject } from '../../src/scim/normalize.ts';
import { applyUserPatch, readPatchOperations } from '../../src/scim/patch.ts';
import {
  ENTERPRISE,
  GROUP_ID,
  MANAGER_ID,
  OTHER_USER_ID,
  USER_ID,
  entraUser,
  filters,
  groupPatches,
  userPatches,
} from './fixtures/vendor-requests.ts';

const eq = (attr: string, value: string): Filter => ({ op: 'compare', attr, compare: 'eq', value });

/** The user document after a PATCH body, normalized as the SCIM server stores it. */
const patched = (body: unknown, user: JsonObject = entraUser) =>
  normalizeUser(applyUserPatch(normalizeUser(user), readPatchOperations(body)));

/** The changes of a group PATCH body, merged as the server applies them in order. */
const groupChanges = (body: unknown) => readPatchOperations(body).map(groupChange);

function scimErrorOf(fn: () => unknown): { status: number; scimType?: string } {
  try {
    fn();
  } catch (error) {
    return error as { status: number; scimType?: string };
  }
  throw new Error('expected a SCIM error');
}

describe('filters IdPs send', () => {
  it('Okta looks users up by userName', () => {
    expect(parseFilter(filters.okta.userLookup)).toEqual(eq('userName', 'test.user@okta.local'));
  });

  it('Entra ID: Test Connection, userName, externalId and group displayName lookups', () => {
    expect(parseFilter(filters.entra.testConnection)).toEqual(
      eq('userName', 'Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee'),
    );
    expect(parseFilter(filters.entra.userLookup)).toEqual(
      eq('userName', 'Test_User_dfeef4c5-5681-4387-b016-bdf221e82081'),
    );
    expect(parseFilter(filters.entra.externalIdLookup)).toEqual(
      eq('externalId', '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef'),
    );
    expect(parseFilter(filters.entra.groupLookup)).toEqual(eq('displayName', 'Group1DisplayName'));
  });

  it('Entra ID matching on the work email: one email must be both the work one and the address', () => {
    expect(parseFilter(filters.entra.workEmailLookup)).toEqual({
      op: 'valuePath',
      attr: 'emails',
      filter: { op: 'and', left: eq('type', 'work'), right: eq('value', 'grace@contoso.example') },
    });
  });

  it('OneLogin and JumpCloud look users up by userName and externalId', () => {
    expect(parseFilter(filters.onelogin.userLookup)).toEqual(eq('userName', 'jane.doe@onelogin.example'));
    expect(parseFilter(filters.jumpcloud.userLookup)).toEqual(eq('userName', 'jane.doe@jumpcloud.example'));
    expect(parseFilter(filters.jumpcloud.externalIdLookup)).toEqual(eq('externalId', '5f1f5e0c2b3a'));
  });

  it('the RFC 7644 §3.4.2.2 examples parse; broken filters are invalidFilter', () => {
    expect(parseFilter('title pr and userType eq "Employee"')).toEqual({
      op: 'and',
      left: { op: 'present', attr: 'title' },
      right: eq('userType', 'Employee'),
    });
    expect(
      parseFilter('userType eq "Employee" and not (emails co "example.com" or emails.value co "example.org")'),
    ).toEqual({
      op: 'and',
      left: eq('userType', 'Employee'),
      right: {
        op: 'not',
        filter: {
          op: 'or',
          left: { op: 'compare', attr: 'emails', compare: 'co', value: 'example.com' },
          right: { op: 'compare', attr: 'emails.value', compare: 'co', value: 'example.org' },
        },
      },
    });
    expect(parseFilter('meta.lastModified gt "2011-05-13T04:42:34Z"')).toEqual({
      op: 'compare',
      attr: 'meta.lastModified',
      compare: 'gt',
      value: '2011-05-13T04:42:34Z',
    });
    for (const bad of [
      'userName eq',
      'userName equals "x"',
      'emails[type eq "work"',
      'userName eq "open',
      '(userName eq "x"',
    ]) {
      expect(scimErrorOf(() => parseFilter(bad))).toMatchObject({ status: 400, scimType: 'invalidFilter' });
    }
  });
});

describe('user PATCH bodies IdPs send', () => {
  it('Okta deactivates and reactivates with a pathless replace', () => {
    expect(patched(userPatches.okta.deactivate).active).toBe(false);
    expect(patched(userPatches.okta.reactivate, { ...entraUser, active: false }).active).toBe(true);
  });

  it("Okta's password sync changes nothing stored", () => {
    const after = patched(userPatches.okta.password);
    expect(after).not.toHaveProperty('password');
    expect(after).toEqual(normalizeUser(entraUser as JsonObject));
  });

  it('Entra ID: work email through a filtered path and a name part, in one request', () => {
    const after = patched(userPatches.entra.multiValued);
    expect(after.emails).toEqual([{ primary: true, type: 'work', value: 'updated.email@contoso.example' }]);
    expect(after.name).toMatchObject({ familyName: 'updatedFamilyName', givenName: 'Grace' });
  });

  it('Entra ID: userName, active, and the enterprise extension by URN path (a bare manager id)', () => {
    expect(patched(userPatches.entra.singleValued).userName).toBe(
      '5b50642d-79fc-4410-9e90-4c077cdd1a59@contoso.example',
    );
    expect(patched(userPatches.entra.disable).active).toBe(false);
    expect(patched(userPatches.entra.manager)[ENTERPRISE]).toMatchObject({ manager: { value: MANAGER_ID } });
    expect(patched(userPatches.entra.department)[ENTERPRISE]).toMatchObject({
      department: 'Finance',
      employeeNumber: '1906',
    });
  });

  it('Entra ID: Add of a work email creates it when the user has none; Remove drops an attribute', () => {
    const { emails: _emails, ...withoutEmails } = entraUser;
    expect(patched(userPatches.entra.addWorkEmail, withoutEmails as JsonObject).emails).toEqual([
      { type: 'work', value: 'new.address@contoso.example' },
    ]);
    expect(patched(userPatches.entra.removeTitle)).not.toHaveProperty('title');
  });

  it('Entra ID without aadOptscim062020: "False", pathless Add with dotted keys, pathless Replace with URN keys', () => {
    const after = patched(userPatches.entra.legacy);
    expect(after.active).toBe(false);
    expect(after.nickName).toBe('Babs');
    expect(after.name).toMatchObject({ givenName: 'Barbara', familyName: 'Hopper' });
    expect(after[ENTERPRISE]).toMatchObject({ employeeNumber: '701984', department: 'Navy' });
  });

  it('operation names in any case; an empty list is no change; malformed bodies are 400 with the right scimType', () => {
    expect(readPatchOperations(userPatches.entra.disable)).toEqual([{ op: 'replace', path: 'active', value: false }]);
    expect(readPatchOperations(groupPatches.entra.empty)).toEqual([]);
    expect(scimErrorOf(() => readPatchOperations({ schemas: [] }))).toMatchObject({
      status: 400,
      scimType: 'invalidSyntax',
    });
    expect(scimErrorOf(() => readPatchOperations({ Operations: [{ op: 'Move', path: 'title' }] }))).toMatchObject({
      status: 400,
      scimType: 'invalidSyntax',
    });
    expect(scimErrorOf(() => readPatchOperations({ Operations: [{ op: 'Remove' }] }))).toMatchObject({
      status: 400,
      scimType: 'noTarget',
    });
    expect(scimErrorOf(() => readPatchOperations({ Operations: [{ op: 'Replace', path: 'title' }] }))).toMatchObject({
      status: 400,
      scimType: 'invalidValue',
    });
  });
});

describe('group PATCH bodies IdPs send', () => {
  it('Okta: rename with a pathless replace that carries the id; add members; remove one by filter', () => {
    expect(groupChanges(groupPatches.okta.rename)).toEqual([
      { rename: { displayName: 'Test SCIMv2' }, add: [], remove: [] },
    ]);
    expect(groupChanges(groupPatches.okta.addMembers)).toEqual([{ add: [USER_ID, OTHER_USER_ID], remove: [] }]);
    expect(groupChanges(groupPatches.okta.removeMember)).toEqual([{ add: [], remove: [OTHER_USER_ID] }]);
  });

  it('Entra ID: Add and Remove with value arrays ($ref null), Replace of displayName', () => {
    expect(groupChanges(groupPatches.entra.addMember)).toEqual([{ add: [USER_ID], remove: [] }]);
    expect(groupChanges(groupPatches.entra.removeMember)).toEqual([{ add: [], remove: [USER_ID] }]);
    expect(groupChanges(groupPatches.entra.rename)).toEqual([
      { rename: { displayName: '1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName' }, add: [], remove: [] },
    ]);
  });

  it('Entra ID without aadOptscim062020: remove by members[value eq], pathless Add of members', () => {
    expect(groupChanges(groupPatches.entra.legacyRemoveMember)).toEqual([{ add: [], remove: [USER_ID] }]);
    expect(groupChanges(groupPatches.entra.legacyAddMembers)).toEqual([{ add: [USER_ID, OTHER_USER_ID], remove: [] }]);
  });

  it('RFC 7644 §3.5.2: add with $ref, replace the whole list, remove all, remove all then add', () => {
    expect(groupChanges(groupPatches.rfc7644.addMembers)).toEqual([{ add: [USER_ID], remove: [] }]);
    expect(groupChanges(groupPatches.rfc7644.replaceMembers)).toEqual([
      { replaceMembers: [USER_ID], add: [], remove: [] },
    ]);
    expect(groupChanges(groupPatches.rfc7644.removeAllMembers)).toEqual([{ replaceMembers: [], add: [], remove: [] }]);
    expect(groupChanges(groupPatches.rfc7644.removeAndAdd)).toEqual([
      { replaceMembers: [], add: [], remove: [] },
      { add: [OTHER_USER_ID], remove: [] },
    ]);
  });

  it('refuses what no IdP should send: members without a value, a member filter other than value eq, an unknown attribute', () => {
    const op = (operation: object) => () => groupChanges({ Operations: [operation] });
    expect(scimErrorOf(op({ op: 'add', path: 'members', value: [{ display: 'x' }] }))).toMatchObject({
      scimType: 'invalidValue',
    });
    expect(scimErrorOf(op({ op: 'remove', path: 'members[display eq "x"]' }))).toMatchObject({
      scimType: 'invalidFilter',
    });
    expect(scimErrorOf(op({ op: 'replace', path: `members[value eq "${USER_ID}"]`, value: {} }))).toMatchObject({
      scimType: 'invalidPath',
    });
    expect(scimErrorOf(op({ op: 'replace', path: 'owner', value: GROUP_ID }))).toMatchObject({
      scimType: 'invalidPath',
    });
    expect(scimErrorOf(op({ op: 'remove', path: 'displayName' }))).toMatchObject({ scimType: 'mutability' });
  });
});
