// The SAML tab of the Identity provider page, on the SAML connection API (/api/saml): what to
// copy into Okta or Entra ID, the connections (IdP metadata by URL, kept up to date by orgsync, or
// pasted; enable, disable, delete; test login) and the recent sign-in attempts, to debug a connection.

import { api, base } from '../lib/api.js';
import {
  attempt,
  busy,
  checkboxGroup,
  confirmDialog,
  copyRow,
  field,
  formatTime,
  h,
  inBackground,
  latestOnly,
  messageBox,
  openDialog,
  replace,
  showStatus,
  table,
} from '../lib/dom.js';

export async function samlPanel(panel, session) {
  let sp;
  try {
    sp = await api('GET', '/saml/service-provider');
  } catch (error) {
    if (error.status !== 404) throw error;
    replace(
      panel,
      h('h2', {}, 'SAML single sign-on'),
      h(
        'p',
        { class: 'notice' },
        'This server does not offer SAML connection management yet. Once it does, this tab shows the SP entity id, ACS URL and metadata link to copy into the IdP, takes the IdP’s metadata (or its URL), and has a test-login button.',
      ),
    );
    return;
  }
  const slug = session.organization.slug;
  const requiredArea = h('div', {});
  const connectionsArea = h('div', {});
  const attemptsArea = h('div', {});

  const fetchConnections = latestOnly(
    () => Promise.all([api('GET', '/saml/connections'), api('GET', '/saml/attempts?limit=20')]),
    inBackground,
  );
  async function reload() {
    const answer = await fetchConnections();
    if (!answer) return;
    await drawRequired(answer[0].items);
    drawConnections(answer[0].items);
    drawAttempts(answer[1].items, answer[0].items);
  }

  /** The required-SSO switch and the break-glass owners (who may still sign in without SSO). */
  async function drawRequired(connections) {
    const organization = await api('GET', '/organization');
    const owners = session.can('members:view')
      ? ((await inBackground(() => api('GET', '/members?role=owner&limit=200')))?.items ?? [])
      : [];
    const anyEnabled = connections.some((c) => c.enabled);
    const required = h('input', {
      type: 'checkbox',
      id: 'require-sso',
      role: 'switch',
      checked: organization.requireSso,
      disabled: !anyEnabled && !organization.requireSso,
      'aria-describedby': 'require-sso-hint',
    });
    const breakGlass = checkboxGroup(
      'Break-glass owners (may still sign in without SSO, audited)',
      owners.map((o) => ({ value: o.accountId, label: o.email })),
      organization.ssoBreakGlassAccountIds,
      'break-glass',
    );
    const message = messageBox();
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
    const form = h(
      'form',
      { class: 'card', 'aria-labelledby': 'require-sso-title' },
      h('h3', { id: 'require-sso-title' }, 'Require single sign-on'),
      message,
      h('label', { for: required.id, class: 'check switch' }, required, ' Members sign in only through SAML'),
      h(
        'p',
        { class: 'hint', id: 'require-sso-hint' },
        anyEnabled
          ? 'Invitation links then lead to the identity provider, and sessions not made through SSO end when you save. Admin API keys keep working.'
          : 'Add and enable a SAML connection first.',
      ),
      breakGlass,
      h('div', { class: 'actions' }, save),
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const turningOn = required.checked && !organization.requireSso;
      if (
        turningOn &&
        !(await confirmDialog(
          'Require single sign-on',
          'Every session not made through SSO ends now, except the break-glass owners’. Members sign in again through the identity provider.',
          'Require SSO',
        ))
      )
        return;
      const saved = await busy(save, () =>
        attempt(
          () =>
            api('PATCH', '/organization', {
              requireSso: required.checked,
              ssoBreakGlassAccountIds: breakGlass.selected(),
            }),
          message,
        ),
      );
      if (!saved) return;
      showStatus(saved.requireSso ? 'Single sign-on is required.' : 'Single sign-on is not required.');
      // A session of one's own not made through SSO has just ended: the next call asks to sign in again.
      await reload();
    });
    replace(requiredArea, form);
  }

  function drawConnections(connections) {
    const rows = connections.map((c) => [
      h('span', {}, h('strong', {}, c.name), h('br'), h('span', { class: 'hint' }, c.idpEntityId)),
      h('span', { class: `badge ${c.enabled ? 'active' : 'suspended'}` }, c.enabled ? 'enabled' : 'disabled'),
      (c.certificateInfo ?? []).map((info, i) => [i ? h('br') : null, `expires ${formatTime(info.notAfter)}`]),
      metadataState(c),
      c.allowIdpInitiated ? 'allowed' : 'off',
      h(
        'div',
        { class: 'actions' },
        c.enabled
          ? h('a', { class: 'button', href: testLoginUrl(c), 'aria-label': `Test login with ${c.name}` }, 'Test login')
          : null,
        c.metadataUrl
          ? h(
              'button',
              { type: 'button', 'aria-label': `Refresh the metadata of ${c.name}`, onclick: () => refresh(c) },
              'Refresh metadata',
            )
          : null,
        h(
          'button',
          { type: 'button', 'aria-label': `Update the metadata of ${c.name}`, onclick: () => metadataDialog(c) },
          'Update metadata',
        ),
        h(
          'button',
          {
            type: 'button',
            'aria-label': `${c.enabled ? 'Disable' : 'Enable'} ${c.name}`,
            onclick: () => setEnabled(c, !c.enabled),
          },
          c.enabled ? 'Disable' : 'Enable',
        ),
        h(
          'button',
          { type: 'button', class: 'danger', 'aria-label': `Delete ${c.name}`, onclick: () => remove(c) },
          'Delete',
        ),
      ),
    ]);
    replace(
      connectionsArea,
      table(
        'SAML connections',
        ['Identity provider', 'Status', 'Certificates', 'Metadata', 'IdP-initiated login', 'Actions'],
        rows,
        { empty: 'No connection yet: add one below with the IdP’s metadata.' },
      ),
    );
  }

  /** Where the metadata comes from; for a URL, the last refresh and the last error, if any. */
  function metadataState(c) {
    if (!c.metadataUrl) return 'pasted';
    return h(
      'span',
      {},
      h('span', { class: 'hint' }, c.metadataUrl),
      h('br'),
      c.metadataRefreshedAt ? `refreshed ${formatTime(c.metadataRefreshedAt)}` : 'not fetched yet',
      c.metadataError
        ? [
            h('br'),
            h('span', { class: 'badge suspended' }, 'refresh failed'),
            ` ${formatTime(c.metadataErrorAt)}: ${c.metadataError}`,
          ]
        : null,
    );
  }

  async function refresh(connection) {
    const saved = await attempt(() => api('POST', `/saml/connections/${connection.id}/refresh-metadata`));
    // A failed refresh is recorded on the connection: the reload shows it.
    await reload();
    if (saved) showStatus(`${saved.name}: metadata refreshed.`);
  }

  /** The body that sets a connection's metadata from the form: the URL if given, else the pasted XML. */
  function metadataBody(url, xml) {
    if (url.value.trim()) return { metadataUrl: url.value.trim() };
    if (xml.value.trim()) return { metadataXml: xml.value };
    throw new Error('Give the metadata URL or paste the metadata XML.');
  }

  function drawAttempts(attempts, connections) {
    const nameOf = (id) => connections.find((c) => c.id === id)?.name ?? '—';
    const rows = attempts.map((a) => [
      formatTime(a.at),
      a.connectionId ? nameOf(a.connectionId) : (a.idpEntityId ?? '—'),
      a.nameId ?? a.email ?? '—',
      h('span', { class: `badge ${a.outcome === 'success' ? 'active' : 'skipped'}` }, a.outcome),
      [a.reason, a.message].filter(Boolean).join(': ') || '—',
    ]);
    replace(
      attemptsArea,
      table('Recent sign-in attempts', ['When', 'Connection', 'NameID', 'Outcome', 'Reason'], rows, {
        empty: 'Nobody has tried to sign in yet.',
      }),
    );
  }

  function testLoginUrl(connection) {
    return `/saml/${encodeURIComponent(slug)}/login?connection=${encodeURIComponent(connection.id)}&returnTo=${encodeURIComponent(`${base}/identity?tab=saml`)}`;
  }

  function metadataDialog(connection) {
    const url = h('input', {
      name: 'metadataUrl',
      type: 'url',
      autocomplete: 'off',
      value: connection.metadataUrl ?? '',
    });
    const xml = h('textarea', { name: 'metadataXml', rows: 10, spellcheck: 'false' });
    const message = messageBox();
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save metadata');
    const form = h(
      'form',
      {},
      message,
      field('Metadata URL', url, 'orgsync fetches it now and then keeps the certificates up to date.'),
      field(
        'IdP metadata XML',
        xml,
        'Or paste it (leave the URL empty). The new certificates replace the old ones; add the new one before the IdP switches.',
      ),
      h('div', { class: 'actions' }, save, h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel')),
    );
    const dialog = openDialog(`Update ${connection.name}`, form);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const saved = await busy(save, () =>
        attempt(() => {
          const body = metadataBody(url, xml);
          // Pasted metadata replaces the URL: the connection no longer follows it.
          if (body.metadataXml && connection.metadataUrl) body.metadataUrl = null;
          return api('PATCH', `/saml/connections/${connection.id}`, body);
        }, message),
      );
      if (!saved) return;
      dialog.close();
      await reload();
      showStatus(`${saved.name}: metadata updated.`);
    });
  }

  async function setEnabled(connection, enabled) {
    const saved = await attempt(() => api('PATCH', `/saml/connections/${connection.id}`, { enabled }));
    if (!saved) return;
    await reload();
    showStatus(`${saved.name} is ${saved.enabled ? 'enabled' : 'disabled'}.`);
  }

  async function remove(connection) {
    const ok = await confirmDialog(
      'Delete SAML connection',
      `Delete ${connection.name}? Nobody can sign in through it any more.`,
      'Delete connection',
    );
    if (!ok) return;
    if ((await attempt(() => api('DELETE', `/saml/connections/${connection.id}`))) === undefined) return;
    await reload();
    showStatus(`${connection.name} deleted.`);
  }

  const name = h('input', { name: 'name', required: true, maxlength: 100, autocomplete: 'off', placeholder: 'Okta' });
  const url = h('input', {
    name: 'metadataUrl',
    type: 'url',
    autocomplete: 'off',
    placeholder: 'https://login.example.com/app/metadata',
  });
  const xml = h('textarea', { name: 'metadataXml', rows: 8, spellcheck: 'false' });
  const addMessage = messageBox();
  const add = h('button', { type: 'submit', class: 'primary' }, 'Add connection');
  const form = h(
    'form',
    { 'aria-labelledby': 'saml-add-title' },
    h('h3', { id: 'saml-add-title' }, 'Add a connection'),
    addMessage,
    field('Connection name', name),
    field(
      'Metadata URL',
      url,
      'In Okta: Sign On tab → “Metadata URL”. In Entra ID: “App Federation Metadata Url”. orgsync fetches it now and refreshes it, so a certificate rotation needs nothing from you.',
    ),
    field(
      'IdP metadata XML',
      xml,
      'Or paste the metadata (leave the URL empty). In Okta: Sign On tab → “Identity Provider metadata”. In Entra ID: “Federation Metadata XML”.',
    ),
    h('div', { class: 'actions' }, add),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const saved = await busy(add, () =>
      attempt(
        () => api('POST', '/saml/connections', { name: name.value.trim(), ...metadataBody(url, xml) }),
        addMessage,
      ),
    );
    if (!saved) return;
    form.reset();
    await reload();
    showStatus(`${saved.name} added. Try it with “Test login”.`);
  });

  replace(
    panel,
    h('h2', {}, 'SAML single sign-on'),
    h(
      'p',
      {},
      'In the IdP, create a SAML app with these values. Okta: “Single sign-on URL” is the ACS URL, “Audience URI (SP Entity ID)” the entity id. Entra ID: “Identifier (Entity ID)” and “Reply URL (Assertion Consumer Service URL)”. Or give the IdP the metadata link.',
    ),
    copyRow('SP entity id', sp.entityId),
    copyRow('ACS URL', sp.acsUrl),
    copyRow('SP metadata link', sp.metadataUrl),
    copyRow(
      'Sign-in link for members',
      sp.loginUrl
        ? `${sp.loginUrl}?returnTo=${encodeURIComponent(`${base}/members`)}`
        : `${location.origin}/saml/${slug}/login`,
    ),
    h(
      'p',
      { class: 'hint' },
      'Send the email address as NameID or as an email attribute; first name, last name and groups attributes are optional.',
    ),
    h('h3', {}, 'Connections'),
    connectionsArea,
    form,
    requiredArea,
    h('h3', {}, 'Recent sign-in attempts'),
    attemptsArea,
  );
  await reload();
}
