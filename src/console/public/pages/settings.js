// Settings: the organization's name, invitation lifetime, default role and organization-wide
// switches (PATCH /api/organization), and leaving the organization (POST /api/leave).

import { adminKey, api, base } from '../lib/api.js';
import { $, attempt, busy, confirmDialog, h, messageBox, replace, setMessage, showStatus } from '../lib/dom.js';
import { checkedField, clearFieldErrors, showFieldErrors, withError } from '../lib/forms.js';
import { startPage } from '../lib/shell.js';

startPage(async (area, session) => {
  replace(
    area,
    session.can('org:manage') ? await settingsForm(session) : readOnly(session.organization),
    leaveSection(session.organization),
  );
});

function readOnly(org) {
  return h(
    'section',
    { 'aria-labelledby': 'settings-title' },
    h('h2', { id: 'settings-title' }, 'Organization'),
    h('p', {}, 'You need the permission org:manage to change these settings.'),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Name'),
      h('dd', {}, org.name),
      h('dt', {}, 'Invitation lifetime'),
      h('dd', {}, `${org.inviteTtlHours} hours`),
      h('dt', {}, 'Default role'),
      h('dd', {}, org.defaultRole),
    ),
  );
}

async function settingsForm(session) {
  const org = session.organization;
  const roles = session.can('members:view') ? (await api('GET', '/roles')).items : [];
  const name = h('input', { name: 'name', value: org.name, maxlength: 200, autocomplete: 'organization' });
  const ttl = h('input', {
    name: 'inviteTtlHours',
    type: 'number',
    min: 1,
    max: 8760,
    step: 1,
    inputmode: 'numeric',
    value: String(org.inviteTtlHours),
  });
  const defaultRole = h(
    'select',
    { name: 'defaultRole' },
    (roles.some((r) => r.key === org.defaultRole)
      ? roles
      : [{ key: org.defaultRole, name: org.defaultRole }, ...roles]
    ).map((r) => h('option', { value: r.key, selected: r.key === org.defaultRole }, r.name)),
  );
  const single = h('input', { type: 'checkbox', name: 'singleOrganization', checked: org.singleOrganization });
  const autoJoin = h('input', {
    type: 'checkbox',
    name: 'autoJoinVerifiedDomains',
    checked: org.autoJoinVerifiedDomains,
  });
  const fields = {
    name: checkedField('Organization name', name),
    inviteTtlHours: checkedField(
      'Invitation lifetime (hours)',
      ttl,
      'How long an invitation link works: 1 to 8760 hours (72 = 3 days).',
    ),
    defaultRole: checkedField(
      'Default role',
      defaultRole,
      'What people get when they join without chosen roles: through SCIM, SSO, a verified domain, or an invitation without roles.',
    ),
    singleOrganization: switchField(
      single,
      'Single organization: members may belong to no other organization',
      'Inviting or provisioning someone who belongs to, or is invited to, another organization is then refused.',
    ),
    autoJoinVerifiedDomains: switchField(
      autoJoin,
      'Auto-join: people from a verified domain join on their first SSO sign-in',
      h(
        'span',
        {},
        'Domains are verified on the ',
        h('a', { href: `${base}/identity?tab=domains` }, 'Identity provider page'),
        '.',
      ),
    ),
  };
  const message = messageBox();
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save settings');
  const form = h(
    'form',
    { 'aria-labelledby': 'settings-title', novalidate: true },
    h('h2', { id: 'settings-title' }, 'Organization'),
    message,
    Object.values(fields),
    h('div', { class: 'actions' }, save),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    setMessage(message, null);
    clearFieldErrors(fields);
    const hours = Number(ttl.value);
    if (ttl.value.trim() === '' || !Number.isInteger(hours)) {
      fields.inviteTtlHours.setError('Enter a whole number of hours.');
      ttl.focus();
      return;
    }
    // Only what changed is sent, so a refusal concerns the fields the admin touched.
    const wanted = {
      name: name.value,
      inviteTtlHours: hours,
      defaultRole: defaultRole.value,
      singleOrganization: single.checked,
      autoJoinVerifiedDomains: autoJoin.checked,
    };
    const changes = Object.fromEntries(Object.entries(wanted).filter(([key, value]) => value !== org[key]));
    if (Object.keys(changes).length === 0) {
      showStatus('Nothing to save: no setting changed.');
      return;
    }
    try {
      const saved = await busy(save, () => api('PATCH', '/organization', changes));
      Object.assign(org, saved);
      replace($('#org-name'), saved.name);
      showStatus('Settings saved.');
    } catch (error) {
      // A refusal of the default role (a role the caller may not hand out) belongs beside it.
      if (error.status === 403 && 'defaultRole' in changes) {
        fields.defaultRole.setError(error.message);
        defaultRole.focus();
        return;
      }
      const rest = showFieldErrors(fields, error);
      if (rest) setMessage(message, new Error(rest));
    }
  });
  return form;
}

/** A checkbox with its label beside it, a hint below, and room for an error. */
function switchField(box, label, hint) {
  box.id = `setting-${box.name}`;
  const hintEl = h('span', { class: 'hint', id: `${box.id}-hint` }, hint);
  box.setAttribute('aria-describedby', hintEl.id);
  return withError(
    h('div', { class: 'field' }, h('label', { class: 'check', for: box.id }, box, ' ', label), hintEl),
    box,
  );
}

function leaveSection(org) {
  const section = h(
    'section',
    { 'aria-labelledby': 'leave-title' },
    h('h2', { id: 'leave-title' }, 'Leave organization'),
  );
  if (adminKey()) {
    section.append(
      h(
        'p',
        {},
        'You are using the console with an admin API key, which is not a member and cannot leave. To stop a key from working, revoke it on the ',
        h('a', { href: `${base}/api-keys` }, 'API keys page'),
        '.',
      ),
    );
    return section;
  }
  const message = messageBox();
  const leave = h('button', { type: 'button', class: 'danger' }, 'Leave organization…');
  leave.addEventListener('click', async () => {
    const ok = await confirmDialog(
      'Leave organization',
      `Leave ${org.name}? You lose access at once; to come back, an admin must invite you again.`,
      'Leave organization',
    );
    if (!ok) return;
    const left = await busy(leave, () => attempt(() => api('POST', '/leave'), message));
    if (left === undefined) return;
    location.assign(`${base}/sign-in?left=1`);
  });
  section.append(
    h('p', {}, `Ends your membership of ${org.name}. The last owner cannot leave: make someone else an owner first.`),
    message,
    h('div', { class: 'actions' }, leave),
  );
  return section;
}
