// Roles: the built-in roles and the organization's custom roles over the six permissions;
// custom roles are created, edited and deleted here. Deleting a role in use is refused by the
// API (409 with its usage) unless a replacement role is chosen, which the dialog then offers.

import { api } from '../lib/api.js';
import {
  attempt,
  busy,
  checkboxGroup,
  confirmDialog,
  h,
  messageBox,
  openDialog,
  replace,
  setMessage,
  showError,
  showStatus,
  table,
} from '../lib/dom.js';
import { checkedField, showFieldErrors, withError } from '../lib/forms.js';
import { startPage } from '../lib/shell.js';

const PERMISSION_LABELS = {
  'members:manage': 'Manage members (invite, change roles, remove)',
  'members:view': 'View members',
  'org:manage': 'Manage the organization (settings, roles, SSO, keys)',
  'billing:manage': 'Manage billing',
  'workspaces:create': 'Create workspaces',
  'workspaces:view_all': 'View all workspaces',
};

startPage(async (area, session) => {
  if (!session.can('members:view')) {
    replace(area, h('p', {}, 'You need the permission members:view to see the roles.'));
    return;
  }
  const manage = session.can('org:manage');
  const list = h('div', {});
  let roles = [];
  let permissions = [];
  const reload = async () => {
    const answer = await attempt(() => api('GET', '/roles'));
    if (!answer) return;
    roles = answer.items;
    permissions = answer.permissions;
    draw();
  };
  const draw = () => {
    const rows = roles.map((role) => [
      h('span', {}, role.name, ' ', h('code', {}, role.key)),
      role.builtIn ? h('span', { class: 'badge' }, 'built in') : h('span', { class: 'badge active' }, 'custom'),
      role.permissions.length ? role.permissions.join(', ') : h('span', { class: 'hint' }, 'none'),
      ...(!manage
        ? []
        : [
            role.builtIn
              ? ''
              : h(
                  'div',
                  { class: 'actions' },
                  h(
                    'button',
                    { type: 'button', 'aria-label': `Edit the role ${role.name}`, onclick: () => edit(role) },
                    'Edit',
                  ),
                  h(
                    'button',
                    {
                      type: 'button',
                      class: 'danger',
                      'aria-label': `Delete the role ${role.name}`,
                      onclick: () => remove(role),
                    },
                    'Delete',
                  ),
                ),
          ]),
    ]);
    replace(list, table('Roles', ['Role', 'Kind', 'Permissions', ...(manage ? ['Actions'] : [])], rows));
  };

  /** The create and edit dialog: key (new roles only), name and permissions. */
  function roleDialog(role) {
    const key = h('input', {
      name: 'key',
      maxlength: 63,
      autocomplete: 'off',
      spellcheck: 'false',
      placeholder: 'support',
    });
    const name = h('input', { name: 'name', maxlength: 100, autocomplete: 'off', value: role?.name ?? '' });
    const boxes = withError(
      checkboxGroup(
        'Permissions',
        permissions.map((p) => ({ value: p, label: PERMISSION_LABELS[p] ?? p })),
        role?.permissions ?? [],
      ),
    );
    const fields = {
      ...(role ? {} : { key: checkedField('Key', key, 'Lowercase letters, digits, _ or -; cannot change later.') }),
      name: checkedField('Name', name),
      permissions: boxes,
    };
    const message = messageBox();
    const submit = h('button', { type: 'submit', class: 'primary' }, role ? 'Save role' : 'Create role');
    const form = h(
      'form',
      { novalidate: true },
      message,
      Object.values(fields),
      h('div', { class: 'actions' }, submit),
    );
    const dialog = openDialog(role ? `Edit role ${role.name}` : 'New role', form);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      setMessage(message, null);
      const body = { name: name.value, permissions: boxes.selected() };
      try {
        const saved = await busy(submit, () =>
          role
            ? api('PATCH', `/roles/${encodeURIComponent(role.key)}`, body)
            : api('POST', '/roles', { key: key.value.trim(), ...body }),
        );
        dialog.close();
        await reload();
        showStatus(role ? `Role ${saved.name} saved.` : `Role ${saved.name} created.`);
      } catch (error) {
        const rest = showFieldErrors(fields, error);
        if (rest) setMessage(message, new Error(rest));
      }
    });
  }
  const edit = (role) => roleDialog(role);

  async function remove(role) {
    const ok = await confirmDialog('Delete role', `Delete the role ${role.name}?`, 'Delete role');
    if (!ok) return;
    const path = `/roles/${encodeURIComponent(role.key)}`;
    try {
      await api('DELETE', path);
      await reload();
      showStatus(`Role ${role.name} deleted; nobody used it.`);
    } catch (error) {
      if (error.status === 409 && error.code === 'conflict' && 'members' in error.details) reassign(role, error);
      else showError(error);
    }
  }

  /** The role is in use: say by whom, and offer to give them another role instead. */
  function reassign(role, refusal) {
    const others = roles.filter((r) => r.key !== role.key);
    const replacement = h(
      'select',
      { name: 'reassignTo' },
      others.map((r) => h('option', { value: r.key, selected: r.key === 'member' }, r.name)),
    );
    const message = messageBox();
    const submit = h('button', { type: 'submit', class: 'danger' }, 'Reassign and delete');
    const cancel = h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel');
    const form = h(
      'form',
      {},
      h('p', {}, `${role.name} is still in use: ${usage(refusal.details)}. It was not deleted.`),
      h('p', {}, 'Choose the role they get instead; then the role is deleted.'),
      message,
      checkedField('Reassign to', replacement),
      h('div', { class: 'actions' }, cancel, submit),
    );
    const dialog = openDialog(`Role ${role.name} is in use`, form, { initialFocus: replacement });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const done = await busy(submit, () =>
        attempt(
          () =>
            api('DELETE', `/roles/${encodeURIComponent(role.key)}?reassignTo=${encodeURIComponent(replacement.value)}`),
          message,
        ),
      );
      if (!done) return;
      dialog.close();
      await reload();
      const to = roles.find((r) => r.key === done.reassignedTo)?.name ?? done.reassignedTo;
      showStatus(`Role ${role.name} deleted; ${to} replaces it for ${usage(done)}.`);
    });
  }

  const create = h('button', { type: 'button', class: 'primary', onclick: () => roleDialog(null) }, 'New role');
  replace(
    area,
    h(
      'p',
      {},
      'A role is a named set of permissions. The built-in roles cannot change; custom roles can, and their members gain or lose permissions at once.',
    ),
    manage ? h('div', { class: 'actions' }, create) : null,
    list,
  );
  await reload();
});

/** "2 members, 1 group mapping and the default role" */
function usage(counts) {
  const count = (n, one) => (n ? [`${n} ${one}${n === 1 ? '' : 's'}`] : []);
  const parts = [
    ...count(counts.members, 'member'),
    ...count(counts.mappings, 'group mapping'),
    ...count(counts.apiKeys, 'API key'),
    ...(counts.defaultRole ? ['the default role'] : []),
  ];
  return parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}` : (parts[0] ?? 'nothing');
}
