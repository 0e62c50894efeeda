// Groups and role mapping: local groups, the groups the IdP sends (SCIM or SAML), and mappings
// from a group to roles, each showing how many members it affects (also before saving).

import { api, query } from '../lib/api.js';
import {
  attempt,
  busy,
  checkboxGroup,
  confirmDialog,
  field,
  h,
  latestOnly,
  messageBox,
  openDialog,
  replace,
  setMessage,
  showStatus,
  table,
} from '../lib/dom.js';
import { startPage } from '../lib/shell.js';

const SOURCE = { local: 'Local', scim: 'SCIM', saml: 'SAML' };
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

startPage(async (area, session) => {
  if (!session.can('members:view')) {
    replace(area, h('p', {}, 'You need the permission members:view to see groups.'));
    return;
  }
  const canManage = session.can('members:manage');
  const { items: roles } = await api('GET', '/roles');
  const roleName = (key) => roles.find((r) => r.key === key)?.name ?? key;
  const localArea = h('div', {});
  const idpArea = h('div', {});
  const mappingArea = h('div', {});
  replace(
    area,
    h(
      'section',
      {},
      h('h2', {}, 'Local groups'),
      h('p', { class: 'hint' }, 'Groups you manage here; invitations can add people to them.'),
      localArea,
    ),
    h(
      'section',
      {},
      h('h2', {}, 'Groups from the identity provider'),
      h('p', { class: 'hint' }, 'Sent by the IdP through SCIM or in SAML logins; they change only there.'),
      idpArea,
    ),
    h(
      'section',
      {},
      h('h2', {}, 'Role mapping'),
      h(
        'p',
        { class: 'hint' },
        'Members of a mapped group get its roles on top of their own; removing them from the group takes the roles away.',
      ),
      mappingArea,
    ),
  );

  let groups = [];
  const fetchGroups = latestOnly(() => Promise.all([api('GET', '/groups'), api('GET', '/group-mappings')]));
  async function load() {
    const answer = await fetchGroups();
    if (!answer) return;
    const [groupList, mappings] = answer;
    groups = groupList.items;
    drawLocal(groups.filter((g) => g.source === 'local'));
    drawIdp(groups.filter((g) => g.source !== 'local'));
    const counts = await attempt(() =>
      Promise.all(mappings.items.map((m) => preview(m.groupId ? { groupId: m.groupId } : { groupName: m.groupName }))),
    );
    drawMappings(mappings.items, counts ?? []);
  }

  function drawLocal(local) {
    const rows = local.map((g) => [
      g.displayName,
      String(g.memberCount),
      canManage
        ? h(
            'div',
            { class: 'actions' },
            h(
              'button',
              { type: 'button', 'aria-label': `Members of ${g.displayName}`, onclick: () => membersDialog(g) },
              'Members',
            ),
            h(
              'button',
              { type: 'button', 'aria-label': `Rename ${g.displayName}`, onclick: () => renameGroup(g) },
              'Rename',
            ),
            h(
              'button',
              {
                type: 'button',
                class: 'danger',
                'aria-label': `Delete ${g.displayName}`,
                onclick: () => deleteGroup(g),
              },
              'Delete',
            ),
          )
        : '',
    ]);
    const name = h('input', { name: 'displayName', required: true, maxlength: 256, autocomplete: 'off' });
    const create = h('button', { type: 'submit' }, 'Create group');
    const form = h(
      'form',
      { class: 'toolbar', 'aria-label': 'New local group' },
      field('New group name', name),
      create,
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const created = await busy(create, () =>
        attempt(() => api('POST', '/groups', { displayName: name.value.trim() })),
      );
      if (!created) return;
      await load();
      showStatus(`Group ${created.displayName} created.`);
    });
    replace(
      localArea,
      table('Local groups', ['Name', 'Members', canManage ? 'Actions' : ''], rows, { empty: 'No local groups yet.' }),
      canManage ? form : null,
    );
  }

  function drawIdp(idp) {
    const rows = idp.map((g) => [
      g.displayName,
      SOURCE[g.source],
      String(g.memberCount),
      h(
        'button',
        {
          type: 'button',
          'aria-label': `Members of ${g.displayName} (${SOURCE[g.source]})`,
          onclick: () => membersDialog(g),
        },
        'Members',
      ),
    ]);
    replace(
      idpArea,
      table('Groups from the identity provider', ['Name', 'Source', 'Members', 'Actions'], rows, {
        empty: 'The identity provider has not sent any groups yet.',
      }),
    );
  }

  function describeTarget(m) {
    if (!m.groupId) return `Every group named “${m.groupName}”`;
    const group = groups.find((g) => g.id === m.groupId);
    return group ? `${group.displayName} (${SOURCE[group.source]})` : 'a deleted group';
  }

  function drawMappings(mappings, counts) {
    const rows = mappings.map((m, i) => [
      describeTarget(m),
      m.roles.map(roleName).join(', '),
      counts[i] === undefined ? '—' : plural(counts[i].affectedMembers, 'member'),
      canManage
        ? h(
            'div',
            { class: 'actions' },
            h(
              'button',
              {
                type: 'button',
                'aria-label': `Change the roles of the mapping of ${describeTarget(m)}`,
                onclick: () => mappingDialog(m),
              },
              'Change roles',
            ),
            h(
              'button',
              {
                type: 'button',
                class: 'danger',
                'aria-label': `Delete the mapping of ${describeTarget(m)}`,
                onclick: () => deleteMapping(m, counts[i]?.affectedMembers),
              },
              'Delete',
            ),
          )
        : '',
    ]);
    const add = canManage
      ? h(
          'div',
          { class: 'actions' },
          h('button', { type: 'button', class: 'primary', onclick: () => mappingDialog(null) }, 'Map a group to roles'),
        )
      : null;
    replace(
      mappingArea,
      table('Role mappings', ['Group', 'Roles', 'Affects', canManage ? 'Actions' : ''], rows, {
        empty: 'No mappings yet.',
      }),
      add,
    );
  }

  function preview(target) {
    return api('GET', `/group-mappings/preview${query(target)}`);
  }

  /** New mapping (mapping null) or change of an existing one's roles; the preview updates as you choose. */
  function mappingDialog(mapping) {
    const byId = h('input', {
      type: 'radio',
      name: 'target',
      value: 'id',
      checked: !mapping || Boolean(mapping.groupId),
      id: 'target-id',
      disabled: Boolean(mapping),
    });
    const byName = h('input', {
      type: 'radio',
      name: 'target',
      value: 'name',
      checked: Boolean(mapping && !mapping.groupId),
      id: 'target-name',
      disabled: Boolean(mapping),
    });
    const groupSelect = h(
      'select',
      { name: 'groupId', disabled: Boolean(mapping) },
      h('option', { value: '' }, 'Choose a group…'),
      groups.map((g) =>
        h('option', { value: g.id, selected: mapping?.groupId === g.id }, `${g.displayName} (${SOURCE[g.source]})`),
      ),
    );
    const groupName = h('input', {
      name: 'groupName',
      maxlength: 256,
      autocomplete: 'off',
      value: mapping?.groupName ?? '',
      disabled: Boolean(mapping),
    });
    const roleChoice = checkboxGroup(
      'Roles the members get',
      roles.map((r) => ({ value: r.key, label: r.name })),
      mapping?.roles ?? [],
    );
    const effect = h(
      'p',
      { class: 'notice', role: 'status', 'aria-live': 'polite' },
      'Choose a group to see how many members this affects.',
    );
    const message = messageBox();
    const save = h('button', { type: 'submit', class: 'primary' }, mapping ? 'Save roles' : 'Save mapping');
    const form = h(
      'form',
      {},
      message,
      h(
        'fieldset',
        { class: 'checks' },
        h('legend', {}, 'Which group'),
        h('label', { for: byId.id, class: 'check' }, byId, ' One group'),
        h('label', { for: byName.id, class: 'check' }, byName, ' Every group with a name (SCIM or SAML)'),
      ),
      field('Group', groupSelect),
      field('Group name', groupName, 'Matched case-insensitively, for example the value of the SAML groups attribute.'),
      roleChoice,
      effect,
      h('div', { class: 'actions' }, save, h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel')),
    );
    const target = () =>
      byId.checked
        ? groupSelect.value
          ? { groupId: groupSelect.value }
          : null
        : groupName.value.trim()
          ? { groupName: groupName.value.trim() }
          : null;
    // Only the latest choice's count is shown; its error shows in the dialog, not on the page.
    const showEffect = async (answer) => {
      try {
        const counted = await answer();
        if (!counted) return replace(effect, 'Choose a group to see how many members this affects.');
        const roleText = roleChoice.selected().map(roleName).join(', ') || 'the chosen roles';
        replace(
          effect,
          `This mapping affects ${plural(counted.affectedMembers, 'member')}: they will have ${roleText}.`,
        );
      } catch (error) {
        replace(effect, error.message);
      }
    };
    const refresh = latestOnly(async () => {
      const wanted = target();
      return wanted ? preview(wanted) : null;
    }, showEffect);
    const showChoice = () => {
      groupSelect.closest('.field').hidden = !byId.checked;
      groupName.closest('.field').hidden = byId.checked;
      refresh();
    };
    let typing;
    byId.addEventListener('change', showChoice);
    byName.addEventListener('change', showChoice);
    groupSelect.addEventListener('change', refresh);
    groupName.addEventListener('input', () => {
      clearTimeout(typing);
      typing = setTimeout(refresh, 250);
    });
    roleChoice.addEventListener('change', refresh);
    const dialog = openDialog(mapping ? 'Change the roles of a mapping' : 'Map a group to roles', form, {
      initialFocus: mapping ? roleChoice.querySelector('input') : byId,
    });
    showChoice();

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const chosenRoles = roleChoice.selected();
      const wanted = target();
      if (!wanted) return setMessage(message, new Error(byId.checked ? 'Choose a group.' : 'Enter a group name.'));
      if (chosenRoles.length === 0) return setMessage(message, new Error('Choose at least one role.'));
      const saved = await busy(save, () =>
        attempt(
          () =>
            mapping
              ? api('PATCH', `/group-mappings/${mapping.id}`, { roles: chosenRoles })
              : api('POST', '/group-mappings', { ...wanted, roles: chosenRoles }),
          message,
        ),
      );
      if (!saved) return;
      dialog.close();
      await load();
      showStatus(
        `Mapping saved: ${describeTarget(saved)} → ${saved.roles.map(roleName).join(', ')}. Members’ roles follow within seconds.`,
      );
    });
  }

  async function deleteMapping(mapping, affected) {
    const who = affected === undefined ? 'Its members' : `${plural(affected, 'member')}`;
    const ok = await confirmDialog(
      'Delete mapping',
      `${who} of ${describeTarget(mapping)} lose ${mapping.roles.map(roleName).join(', ')} from this mapping (roles given to them directly stay).`,
      'Delete mapping',
    );
    if (!ok) return;
    if ((await attempt(() => api('DELETE', `/group-mappings/${mapping.id}`))) === undefined) return;
    await load();
    showStatus('Mapping deleted.');
  }

  /** Who is in a group; a local group's members can be added (by email) and removed here. */
  function membersDialog(group) {
    const editable = group.source === 'local' && canManage;
    const message = messageBox();
    const outcome = h('p', { role: 'status', 'aria-live': 'polite' });
    const listArea = h('div', {});
    let changed = false;
    const email = h('input', {
      type: 'email',
      name: 'email',
      required: true,
      autocomplete: 'off',
      spellcheck: 'false',
    });
    const addButton = h('button', { type: 'submit' }, 'Add to group');
    const addForm = h(
      'form',
      { class: 'toolbar', 'aria-label': `Add a member to ${group.displayName}` },
      field('Member’s email', email, 'Only people already in the organization.'),
      addButton,
    );

    const change = async (body, done) => {
      const result = await attempt(() => api('POST', `/groups/${group.id}/members`, body), message);
      if (!result) return;
      changed = true;
      replace(outcome, done);
      await list();
    };
    addForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const wanted = email.value.trim().toLowerCase();
      await busy(addButton, async () => {
        const found = await attempt(() => api('GET', `/members${query({ email: wanted, limit: 50 })}`), message);
        if (!found) return;
        const member = found.items.find((m) => m.email.toLowerCase() === wanted);
        if (!member)
          return setMessage(
            message,
            new Error(`Nobody with the address ${wanted} is in the organization; invite them first.`),
          );
        await change({ add: [member.accountId] }, `${member.email} added.`);
        email.value = '';
      });
    });

    // Pages of 100; "Show more" appends the next one.
    async function list(after, shown = []) {
      const page = await attempt(() => api('GET', `/members${query({ group: group.id, limit: 100, after })}`), message);
      if (!page) return;
      const members = [...shown, ...page.items];
      const rows = members.map((m) => [
        m.email,
        h('span', { class: `badge ${m.status}` }, m.status),
        ...(editable
          ? [
              h(
                'button',
                {
                  type: 'button',
                  'aria-label': `Remove ${m.email} from ${group.displayName}`,
                  onclick: () => change({ remove: [m.accountId] }, `${m.email} removed from the group.`),
                },
                'Remove from group',
              ),
            ]
          : []),
      ]);
      const more = page.next
        ? h('button', { type: 'button', onclick: () => list(page.next, members) }, 'Show more')
        : null;
      replace(
        listArea,
        table(`Members of ${group.displayName}`, ['Member', 'Status', ...(editable ? ['Actions'] : [])], rows, {
          empty: 'Nobody is in this group.',
        }),
        more,
      );
    }

    const dialog = openDialog(
      `Members of ${group.displayName}`,
      h(
        'div',
        {},
        message,
        editable ? addForm : h('p', { class: 'hint' }, 'The identity provider manages this group.'),
        outcome,
        listArea,
      ),
      {
        wide: true,
        onClose: () => changed && load(),
      },
    );
    list();
    return dialog;
  }

  function renameGroup(group) {
    const name = h('input', {
      name: 'displayName',
      required: true,
      maxlength: 256,
      value: group.displayName,
      autocomplete: 'off',
    });
    const message = messageBox();
    const save = h('button', { type: 'submit', class: 'primary' }, 'Rename');
    const form = h(
      'form',
      {},
      message,
      field('Group name', name),
      h('div', { class: 'actions' }, save, h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel')),
    );
    const dialog = openDialog(`Rename ${group.displayName}`, form);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const saved = await busy(save, () =>
        attempt(() => api('PATCH', `/groups/${group.id}`, { displayName: name.value.trim() }), message),
      );
      if (!saved) return;
      dialog.close();
      await load();
      showStatus(`Group renamed to ${saved.displayName}.`);
    });
  }

  async function deleteGroup(group) {
    const ok = await confirmDialog(
      'Delete group',
      `Delete ${group.displayName} (${plural(group.memberCount, 'member')})? The people stay in the organization.`,
      'Delete group',
    );
    if (!ok) return;
    if ((await attempt(() => api('DELETE', `/groups/${group.id}`))) === undefined) return;
    await load();
    showStatus(`Group ${group.displayName} deleted.`);
  }

  await load();
});
