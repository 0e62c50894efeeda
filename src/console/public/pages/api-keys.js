// API keys: admin API keys for scripts and first setup. A new key's secret is shown once; the
// list shows who made each key and when it was last used; revoking is immediate.

import { api, base, forgetAdminKey } from '../lib/api.js';
import {
  attempt,
  busy,
  checkboxGroup,
  confirmDialog,
  formatTime,
  h,
  messageBox,
  replace,
  setMessage,
  showStatus,
  table,
} from '../lib/dom.js';
import { checkedField, clearFieldErrors, showFieldErrors, withError } from '../lib/forms.js';
import { showSecretOnce } from '../lib/secret.js';
import { startPage } from '../lib/shell.js';

const CREATORS = { account: '', admin_key: 'API key ', system: '', scim_token: 'SCIM token ' };

startPage(async (area, session) => {
  if (!session.can('org:manage')) {
    replace(area, h('p', {}, 'You need the permission org:manage to manage API keys.'));
    return;
  }
  const [{ items }, { items: roles }] = await Promise.all([api('GET', '/api-keys'), api('GET', '/roles')]);
  // Only roles the caller holds every permission of can go on a key (the API refuses the others).
  const grantable = roles.filter((r) => r.permissions.every((p) => session.can(p)));

  const list = h('div', {});
  const draw = (keys) => {
    const rows = keys.map((k) => [
      h('span', {}, k.name, k.current ? h('span', { class: 'badge active' }, 'this session') : null),
      k.roles.join(', '),
      formatTime(k.createdAt),
      k.createdBy ? `${CREATORS[k.createdBy.type] ?? ''}${k.createdBy.name}` : '—',
      k.lastUsedAt ? formatTime(k.lastUsedAt) : 'never',
      k.revokedAt
        ? h('span', { class: 'badge revoked' }, `revoked ${formatTime(k.revokedAt)}`)
        : k.expiresAt
          ? `expires ${formatTime(k.expiresAt)}`
          : 'live',
      k.revokedAt
        ? ''
        : h(
            'button',
            { type: 'button', class: 'danger', 'aria-label': `Revoke the key ${k.name}`, onclick: () => revoke(k) },
            'Revoke',
          ),
    ]);
    replace(
      list,
      table('API keys', ['Name', 'Roles', 'Created', 'Created by', 'Last used', 'Status', 'Actions'], rows, {
        empty: 'No API keys yet.',
      }),
    );
  };
  const reload = async () => {
    const fresh = await attempt(() => api('GET', '/api-keys'));
    if (fresh) draw(fresh.items);
  };

  const name = h('input', { name: 'name', maxlength: 100, autocomplete: 'off', placeholder: 'deploy' });
  const days = h('input', { name: 'expiresInDays', type: 'number', min: 1, max: 3650, inputmode: 'numeric' });
  const roleBoxes = withError(
    checkboxGroup(
      'Roles',
      grantable.map((r) => ({ value: r.key, label: r.name })),
      grantable.some((r) => r.key === 'admin') ? ['admin'] : [],
    ),
  );
  const fields = {
    name: checkedField('Key name', name, 'What uses it, e.g. a deploy script.'),
    expiresInDays: checkedField('Expires in (days)', days, 'Empty: never.'),
    roles: roleBoxes,
  };
  const message = messageBox();
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create key');
  const form = h(
    'form',
    { 'aria-labelledby': 'new-key-title', novalidate: true },
    h('h2', { id: 'new-key-title' }, 'New API key'),
    h('p', { class: 'hint' }, 'A key acts with its roles: you can give it only roles whose permissions you hold.'),
    message,
    Object.values(fields),
    h('div', { class: 'actions' }, create),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    setMessage(message, null);
    clearFieldErrors(fields);
    const body = { name: name.value, roles: roleBoxes.selected() };
    if (days.value.trim()) body.expiresInDays = Number(days.value);
    try {
      const made = await busy(create, () => api('POST', '/api-keys', body));
      form.reset();
      await reload();
      showSecretOnce('API key created', made.secret, 'API key');
      showStatus(`API key ${made.key.name} created.`);
    } catch (error) {
      const rest = showFieldErrors(fields, error);
      if (rest) setMessage(message, new Error(rest));
    }
  });

  async function revoke(key) {
    const ok = await confirmDialog(
      'Revoke API key',
      key.current
        ? `Revoke ${key.name}? It is the key this console session uses: you will be signed out.`
        : `Revoke ${key.name}? Whatever uses it stops working at once.`,
      'Revoke key',
    );
    if (!ok) return;
    if ((await attempt(() => api('DELETE', `/api-keys/${key.id}`))) === undefined) return;
    if (key.current) {
      forgetAdminKey();
      location.assign(`${base}/sign-in?signedOut=1`);
      return;
    }
    await reload();
    showStatus(`API key ${key.name} revoked.`);
  }

  replace(
    area,
    h(
      'p',
      {},
      'Admin API keys call the admin API (',
      h('code', {}, 'Authorization: Bearer oskey_…'),
      ') from scripts, and sign in to this console before SSO is set up.',
    ),
    list,
    form,
  );
  draw(items);
});
