// Identity provider: SCIM (base URL and bearer tokens), SAML (connection; built in the SAML
// issue), and verified email domains with the auto-join setting.

import { api } from '../lib/api.js';
import {
  attempt,
  busy,
  confirmDialog,
  copyRow,
  field,
  formatTime,
  h,
  inBackground,
  messageBox,
  replace,
  showStatus,
  table,
} from '../lib/dom.js';
import { samlPanel } from './identity-saml.js';
import { showSecretOnce } from '../lib/secret.js';
import { startPage } from '../lib/shell.js';

startPage(async (area, session) => {
  if (!session.can('org:manage')) {
    replace(area, h('p', {}, 'You need the permission org:manage to set up the identity provider.'));
    return;
  }
  const panels = {
    scim: { label: 'SCIM provisioning', draw: (panel) => scimPanel(panel) },
    saml: { label: 'SAML single sign-on', draw: (panel) => samlPanel(panel, session) },
    domains: { label: 'Domains and auto-join', draw: (panel) => domainsPanel(panel, session) },
  };
  replace(area, tabs(panels, new URLSearchParams(location.search).get('tab')));
});

/** WAI-ARIA tabs: arrow keys, Home and End move between tabs; the chosen tab is kept in the address. */
function tabs(panels, initial) {
  const names = Object.keys(panels);
  const list = h('div', { role: 'tablist', 'aria-label': 'Identity provider settings' });
  const container = h('div', {});
  const buttons = names.map((name) =>
    h(
      'button',
      { type: 'button', role: 'tab', id: `tab-${name}`, 'aria-controls': `panel-${name}` },
      panels[name].label,
    ),
  );
  const areas = names.map((name) =>
    h('section', {
      role: 'tabpanel',
      id: `panel-${name}`,
      'aria-labelledby': `tab-${name}`,
      tabindex: '0',
      hidden: true,
    }),
  );
  const drawn = new Set();
  const select = (index, focus) => {
    buttons.forEach((b, i) => {
      b.setAttribute('aria-selected', String(i === index));
      b.tabIndex = i === index ? 0 : -1;
      areas[i].hidden = i !== index;
    });
    if (focus) buttons[index].focus();
    const name = names[index];
    history.replaceState(null, '', `?tab=${name}`);
    if (!drawn.has(name)) {
      drawn.add(name);
      inBackground(() => panels[name].draw(areas[index]));
    }
  };
  buttons.forEach((button, i) => {
    button.addEventListener('click', () => select(i, false));
    button.addEventListener('keydown', (event) => {
      const to = {
        ArrowRight: (i + 1) % names.length,
        ArrowLeft: (i - 1 + names.length) % names.length,
        Home: 0,
        End: names.length - 1,
      }[event.key];
      if (to === undefined) return;
      event.preventDefault();
      select(to, true);
    });
  });
  list.append(...buttons);
  container.append(list, ...areas);
  select(Math.max(0, names.indexOf(initial)), false);
  return container;
}

async function scimPanel(panel) {
  let answer;
  try {
    answer = await api('GET', '/scim-tokens');
  } catch (error) {
    replace(
      panel,
      h('h2', {}, 'SCIM provisioning'),
      h(
        'p',
        { class: 'notice' },
        error.status === 404
          ? 'SCIM token management is not available on this server yet. Meanwhile tokens are made with npx orgsync scim-token create.'
          : error.message,
      ),
    );
    return;
  }
  const name = h('input', { name: 'name', required: true, maxlength: 100, autocomplete: 'off', placeholder: 'okta' });
  const days = h('input', { name: 'expiresInDays', type: 'number', min: 1, max: 3650, inputmode: 'numeric' });
  const message = messageBox();
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create token');
  const form = h(
    'form',
    { 'aria-labelledby': 'new-token-title' },
    h('h3', { id: 'new-token-title' }, 'New token'),
    message,
    h(
      'div',
      { class: 'toolbar' },
      field('Token name', name, 'Which IdP or app uses it.'),
      field('Expires in (days)', days, 'Empty: never.'),
      create,
    ),
  );
  const list = h('div', {});
  const draw = (tokens) => {
    const rows = tokens.map((t) => [
      t.name,
      h('code', {}, t.hint ?? t.secretHint),
      formatTime(t.createdAt),
      t.revokedAt
        ? h('span', { class: 'badge revoked' }, `revoked ${formatTime(t.revokedAt)}`)
        : t.expiresAt
          ? formatTime(t.expiresAt)
          : 'never',
      t.lastUsedAt ? formatTime(t.lastUsedAt) : 'never',
      t.revokedAt
        ? ''
        : h(
            'div',
            { class: 'actions' },
            h(
              'button',
              { type: 'button', 'aria-label': `Rotate the token ${t.name}`, onclick: () => rotate(t) },
              'Rotate',
            ),
            h(
              'button',
              { type: 'button', class: 'danger', 'aria-label': `Revoke the token ${t.name}`, onclick: () => revoke(t) },
              'Revoke',
            ),
          ),
    ]);
    replace(
      list,
      table('SCIM tokens', ['Name', 'Token', 'Created', 'Expires', 'Last used', 'Actions'], rows, {
        empty: 'No tokens yet: create one for your IdP.',
      }),
    );
  };
  const reload = async () => {
    const fresh = await attempt(() => api('GET', '/scim-tokens'));
    if (fresh) draw(fresh.tokens);
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim() };
    if (days.value) body.expiresInDays = Number(days.value);
    const made = await busy(create, () => attempt(() => api('POST', '/scim-tokens', body), message));
    if (!made) return;
    form.reset();
    await reload();
    showSecretOnce('SCIM token created', made.secret, 'SCIM token');
  });
  async function rotate(token) {
    const hours = h('input', {
      name: 'overlapHours',
      type: 'number',
      min: 0,
      max: 720,
      value: '24',
      inputmode: 'numeric',
    });
    const ok = await confirmDialog(
      'Rotate token',
      h(
        'div',
        {},
        h(
          'p',
          {},
          `A new secret replaces ${token.name}. The old one keeps working for the overlap below, so you can update the IdP first.`,
        ),
        field('Overlap (hours)', hours),
      ),
      'Rotate',
      { danger: false },
    );
    if (!ok) return;
    const made = await attempt(() =>
      api('POST', `/scim-tokens/${token.id}/rotate`, { overlapHours: Number(hours.value || 0) }),
    );
    if (!made) return;
    await reload();
    showSecretOnce('SCIM token rotated', made.secret, 'SCIM token');
  }
  async function revoke(token) {
    const ok = await confirmDialog(
      'Revoke token',
      `Revoke ${token.name}? The IdP using it can no longer provision anyone.`,
      'Revoke',
    );
    if (!ok) return;
    if ((await attempt(() => api('DELETE', `/scim-tokens/${token.id}`))) === undefined) return;
    await reload();
    showStatus(`Token ${token.name} revoked.`);
  }
  replace(
    panel,
    h('h2', {}, 'SCIM provisioning'),
    h(
      'p',
      {},
      'Paste the base URL and a token into the IdP’s provisioning settings (Okta: “SCIM connector base URL”, Entra ID: “Tenant URL” and “Secret token”).',
    ),
    copyRow('SCIM base URL', answer.scimBaseUrl),
    list,
    form,
  );
  draw(answer.tokens);
}

async function domainsPanel(panel, session) {
  const { items } = await api('GET', '/domains');
  const autoJoin = h('input', {
    type: 'checkbox',
    id: 'auto-join',
    checked: session.organization.autoJoinVerifiedDomains,
  });
  const autoJoinMessage = messageBox();
  autoJoin.addEventListener('change', async () => {
    const wanted = autoJoin.checked;
    const saved = await attempt(
      () => api('PATCH', '/organization', { autoJoinVerifiedDomains: wanted }),
      autoJoinMessage,
    );
    if (!saved) {
      autoJoin.checked = !wanted;
      return;
    }
    session.organization.autoJoinVerifiedDomains = saved.autoJoinVerifiedDomains;
    showStatus(
      saved.autoJoinVerifiedDomains
        ? `Auto-join is on: people from verified domains join on their first SSO sign-in with the role ${saved.defaultRole}.`
        : 'Auto-join is off.',
    );
  });

  const domain = h('input', {
    name: 'domain',
    required: true,
    maxlength: 253,
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'example.com',
  });
  const add = h('button', { type: 'submit' }, 'Add domain');
  const addMessage = messageBox();
  const form = h(
    'form',
    { 'aria-label': 'Add a domain' },
    addMessage,
    h('div', { class: 'toolbar' }, field('Email domain', domain), add),
  );
  const list = h('div', {});
  const draw = (domains) => {
    const rows = domains.map((d) => [
      d.domain,
      d.verifiedAt
        ? h('span', { class: 'badge active' }, `verified ${formatTime(d.verifiedAt)}`)
        : d.verificationLostAt
          ? h('span', { class: 'badge suspended' }, `record gone since ${formatTime(d.verificationLostAt)}`)
          : h('span', { class: 'badge pending' }, 'not verified'),
      // Kept visible once verified: the daily re-check needs the record to stay published.
      h('code', {}, `${d.record.name} TXT "${d.record.value}"`),
      h(
        'div',
        { class: 'actions' },
        d.verifiedAt
          ? null
          : h('button', { type: 'button', 'aria-label': `Verify ${d.domain}`, onclick: () => verify(d) }, 'Verify'),
        h(
          'button',
          { type: 'button', class: 'danger', 'aria-label': `Remove ${d.domain}`, onclick: () => remove(d) },
          'Remove',
        ),
      ),
    ]);
    replace(
      list,
      table('Email domains', ['Domain', 'Status', 'DNS TXT record to publish', 'Actions'], rows, {
        empty: 'No domains yet.',
      }),
    );
  };
  const reload = async () => {
    const fresh = await attempt(() => api('GET', '/domains'));
    if (fresh) draw(fresh.items);
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const added = await busy(add, () =>
      attempt(() => api('POST', '/domains', { domain: domain.value.trim() }), addMessage),
    );
    if (!added) return;
    form.reset();
    await reload();
    showStatus(`Publish a TXT record on ${added.domain} with the value ${added.record.value}, then verify it.`);
  });
  async function verify(d) {
    // orgsync looks the record up in DNS; a refusal says what it expected and found.
    if (!(await attempt(() => api('POST', `/domains/${encodeURIComponent(d.domain)}/verify`)))) return;
    await reload();
    showStatus(`${d.domain} is verified.`);
  }
  async function remove(d) {
    const ok = await confirmDialog(
      'Remove domain',
      `Remove ${d.domain}? People from it no longer join automatically.`,
      'Remove domain',
    );
    if (!ok) return;
    if ((await attempt(() => api('DELETE', `/domains/${encodeURIComponent(d.domain)}`))) === undefined) return;
    await reload();
    showStatus(`${d.domain} removed.`);
  }
  replace(
    panel,
    h('h2', {}, 'Verified domains'),
    h(
      'p',
      {},
      'A verified email domain belongs to this organization only. Add it, publish the TXT record in its DNS, then mark it verified.',
    ),
    list,
    form,
    h('h2', {}, 'Auto-join'),
    autoJoinMessage,
    h(
      'label',
      { for: autoJoin.id, class: 'check' },
      autoJoin,
      ' People from a verified domain join on their first SSO sign-in',
    ),
    h('p', { class: 'hint' }, `They get the default role (${session.organization.defaultRole}).`),
  );
  draw(items);
}
