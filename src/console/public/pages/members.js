// Members: members and pending invitations as two tabs, each sorted on the server and paged by
// cursor with its total; search by name or email; edit roles, remove one or several, invite (up
// to 20 addresses at once).

import { api, base, query } from '../lib/api.js';
import {
  attempt,
  busy,
  checkboxGroup,
  confirmDialog,
  field,
  formatTime,
  h,
  inBackground,
  latestOnly,
  messageBox,
  openDialog,
  replace,
  setMessage,
  showError,
  showStatus,
  table,
} from '../lib/dom.js';
import { startPage } from '../lib/shell.js';

const PAGE_SIZE = 25;
const TABS = { members: 'Members', invitations: 'Pending invitations' };
// Server-side sorts (GET /api/members?sort=&order=), each walked by its own index.
const SORTS = [
  ['name:asc', 'Name, A to Z'],
  ['name:desc', 'Name, Z to A'],
  ['email:asc', 'Email, A to Z'],
  ['email:desc', 'Email, Z to A'],
  ['status:asc', 'Status'],
  ['joined:desc', 'Joined, newest first'],
  ['joined:asc', 'Joined, oldest first'],
  ['lastActive:desc', 'Last active, most recent first'],
  ['lastActive:asc', 'Last active, least recent first'],
];
const SOURCES = { scim: 'SCIM', sso: 'SSO', invite: 'Invite', admin: 'Admin' };
const IDP_MANAGED = 'SCIM · managed by IdP';
const OVERRIDE_HINT =
  'This member is managed by your identity provider through SCIM; make this change there. ' +
  'Doing it here overrides the IdP, is recorded in the audit log, and the IdP may undo it.';

startPage(async (area, session) => {
  if (!session.can('members:view')) {
    replace(area, h('p', {}, 'You need the permission members:view to see the members.'));
    return;
  }
  const canManage = session.can('members:manage');
  const [{ items: roles }, groups] = await Promise.all([
    api('GET', '/roles'),
    canManage ? api('GET', '/groups?source=local').then((r) => r.items) : [],
  ]);

  // Filters, sort and paging: `cursors` holds the `after` of every page shown so far.
  const state = {
    tab: new URLSearchParams(location.search).get('tab') === 'invitations' ? 'invitations' : 'members',
    q: '',
    status: '',
    role: '',
    sort: 'name:asc',
    cursors: [undefined],
    selected: new Map(),
  };

  const search = h('input', { type: 'search', name: 'q', autocomplete: 'off' });
  const status = h(
    'select',
    { name: 'status' },
    [
      ['', 'All'],
      ['active', 'Active'],
      ['suspended', 'Suspended'],
    ].map(([v, t]) => h('option', { value: v }, t)),
  );
  const statusField = field('Status', status);
  const role = h(
    'select',
    { name: 'role' },
    h('option', { value: '' }, 'Any role'),
    roles.map((r) => h('option', { value: r.key }, r.name)),
  );
  const sort = h(
    'select',
    { name: 'sort' },
    SORTS.map(([value, label]) => h('option', { value }, label)),
  );
  const filters = h(
    'form',
    { class: 'toolbar', role: 'search', 'aria-label': 'Find members' },
    field('Name or email starts with', search),
    statusField,
    field('Role', role),
    field('Sort by', sort),
    h('button', { type: 'submit' }, 'Search'),
  );
  const applyFilters = () => {
    // The selection stays across searches; the confirm dialog lists everyone selected.
    Object.assign(state, { q: search.value.trim(), status: status.value, role: role.value, sort: sort.value });
    state.cursors = [undefined];
    load();
  };
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    applyFilters();
  });
  sort.addEventListener('change', applyFilters);

  const inviteButton = h(
    'button',
    { type: 'button', class: 'primary', onclick: () => inviteDialog(roles, groups, session.organization, load) },
    'Invite people',
  );
  const removeSelected = h(
    'button',
    { type: 'button', class: 'danger', disabled: true, onclick: () => removeMany() },
    'Remove selected',
  );
  const actions = canManage
    ? h(
        'div',
        { class: 'actions' },
        inviteButton,
        removeSelected,
        h('a', { href: `${base}/import` }, 'Import a CSV file…'),
      )
    : null;
  const results = h('div', { id: 'members' });
  const tabList = h('div', { role: 'tablist', 'aria-label': 'Member lists' });
  const tabButtons = Object.entries(TABS).map(([name, label]) => {
    const button = h(
      'button',
      { type: 'button', role: 'tab', id: `tab-${name}`, 'aria-controls': 'member-list', 'data-tab': name },
      label,
    );
    button.addEventListener('click', () => chooseTab(name, false));
    return button;
  });
  // WAI-ARIA tabs: arrow keys, Home and End move between the two lists.
  tabList.addEventListener('keydown', (event) => {
    const i = tabButtons.findIndex((b) => b.dataset.tab === state.tab);
    const to = { ArrowRight: 1 - i, ArrowLeft: 1 - i, Home: 0, End: 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    chooseTab(tabButtons[to].dataset.tab, true);
  });
  tabList.append(...tabButtons);
  const panel = h('section', { role: 'tabpanel', id: 'member-list', tabindex: '-1' }, filters, results);
  replace(area, actions, tabList, panel);

  function chooseTab(name, focus) {
    state.tab = name;
    state.cursors = [undefined];
    for (const b of tabButtons) {
      const chosen = b.dataset.tab === name;
      b.setAttribute('aria-selected', String(chosen));
      b.tabIndex = chosen ? 0 : -1;
      if (chosen && focus) b.focus();
    }
    panel.setAttribute('aria-labelledby', `tab-${name}`);
    // Status tells members apart; every pending invitation has the same one.
    statusField.hidden = name === 'invitations';
    history.replaceState(null, '', name === 'invitations' ? '?tab=invitations' : location.pathname);
    return load();
  }

  /** Each tab's label carries its size (a count the server keeps cheap: an index-only scan). */
  async function countTabs() {
    const totals = await Promise.all(
      Object.keys(TABS).map((tab) => api('GET', `/members${query({ tab, limit: 1 })}`).then((r) => r.total)),
    );
    tabButtons.forEach((b, i) => replace(b, `${TABS[b.dataset.tab]} (${totals[i].toLocaleString('en')})`));
  }

  function updateSelection() {
    removeSelected.disabled = state.selected.size === 0;
    replace(removeSelected, state.selected.size ? `Remove selected (${state.selected.size})` : 'Remove selected');
  }

  // Only the latest request draws: answers to earlier ones (a sort changed twice) are dropped.
  const fetchMembers = latestOnly((filter, after) =>
    api('GET', `/members${query({ ...filter, after, limit: PAGE_SIZE })}`),
  );
  async function load() {
    showStatus('');
    const after = state.cursors.at(-1);
    const [by, order] = state.sort.split(':');
    const filter = {
      tab: state.tab,
      q: state.q,
      status: state.tab === 'members' ? state.status : '',
      role: state.role,
      sort: by,
      order,
    };
    // Pending rows carry their invitation (id and expiry), whatever the number of pending invites.
    const members = await fetchMembers(filter, after);
    if (!members) return;
    void inBackground(countTabs); // not awaited: the counts draw themselves
    const pageNumber = state.cursors.length;
    const pages = Math.max(1, Math.ceil(members.total / PAGE_SIZE));
    const listName = state.tab === 'members' ? 'Members' : 'Pending invitations';

    const selectAll = h('input', { type: 'checkbox', 'aria-label': 'Select every member on this page' });
    const boxes = [];
    const rows = members.items.map((m) => {
      const box = h('input', {
        type: 'checkbox',
        'aria-label': `Select ${m.email}`,
        checked: state.selected.has(m.accountId),
      });
      box.addEventListener('change', () => {
        if (box.checked) state.selected.set(m.accountId, m.email);
        else state.selected.delete(m.accountId);
        updateSelection();
      });
      boxes.push(box);
      const invitation = m.invitation;
      const name = [m.givenName, m.familyName].filter(Boolean).join(' ');
      return [
        ...(canManage ? [box] : []),
        h('span', {}, h('strong', {}, m.email), name ? h('br') : null, name || null),
        h('span', { class: `badge ${m.status}` }, m.status === 'pending' ? 'pending invite' : m.status),
        roleBadges(m, roles),
        m.source === 'scim'
          ? h(
              'span',
              { class: 'badge idp', title: 'Provisioned by the identity provider: change them there' },
              IDP_MANAGED,
            )
          : (SOURCES[m.source] ?? m.source),
        invitation
          ? `invited ${formatTime(invitation.createdAt)}, expires ${formatTime(invitation.expiresAt)}`
          : formatTime(m.lastActiveAt),
        ...(canManage ? [rowActions(m, invitation)] : []),
      ];
    });
    selectAll.addEventListener('change', () => {
      for (const box of boxes) {
        box.checked = selectAll.checked;
        box.dispatchEvent(new Event('change'));
      }
    });
    const headers = [
      ...(canManage ? [selectAll] : []),
      'Member',
      'Status',
      'Roles',
      'Source',
      state.tab === 'members' ? 'Last activity' : 'Invitation',
      ...(canManage ? ['Actions'] : []),
    ];
    const previous = h(
      'button',
      { type: 'button', disabled: pageNumber === 1, onclick: () => (state.cursors.pop(), load()) },
      '← Previous page',
    );
    const next = h(
      'button',
      { type: 'button', disabled: !members.next, onclick: () => (state.cursors.push(members.next), load()) },
      'Next page →',
    );
    replace(
      results,
      h(
        'p',
        { id: 'members-total' },
        `${members.total.toLocaleString('en')} ${state.tab === 'members' ? (members.total === 1 ? 'member' : 'members') : members.total === 1 ? 'pending invitation' : 'pending invitations'}${state.q || state.role || filter.status ? ' match' : ''}.`,
      ),
      table(`${listName}, page ${pageNumber}`, headers, rows, {
        empty: state.tab === 'members' ? 'No members match.' : 'No pending invitations match.',
      }),
      h(
        'nav',
        { class: 'actions', 'aria-label': `Pages of ${listName.toLowerCase()}` },
        previous,
        h('span', {}, `Page ${pageNumber} of ${pages.toLocaleString('en')}`),
        next,
      ),
    );
    updateSelection();
  }

  function rowActions(member, invitation) {
    const edit = h('button', { type: 'button', onclick: () => editRoles(member) }, 'Edit roles');
    const remove = h('button', { type: 'button', class: 'danger', onclick: () => removeOne(member) }, 'Remove');
    edit.setAttribute('aria-label', `Edit roles of ${member.email}`);
    remove.setAttribute('aria-label', `Remove ${member.email}`);
    if (!invitation) return h('div', { class: 'actions' }, edit, remove);
    // A pending invite is withdrawn rather than removed: the audit log then says so.
    const resend = h(
      'button',
      { type: 'button', 'aria-label': `Resend the invitation to ${member.email}`, onclick: () => resendInvite(member) },
      'Resend',
    );
    const withdraw = h(
      'button',
      {
        type: 'button',
        class: 'danger',
        'aria-label': `Withdraw the invitation to ${member.email}`,
        onclick: () => withdrawInvite(member),
      },
      'Withdraw',
    );
    return h('div', { class: 'actions' }, edit, resend, withdraw);
  }

  function editRoles(member) {
    const choice = checkboxGroup(
      'Directly assigned roles',
      roles.map((r) => ({ value: r.key, label: r.name })),
      member.roles,
    );
    const message = messageBox();
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save roles');
    const managed = member.source === 'scim';
    const override = h('input', { type: 'checkbox', name: 'overrideIdp', required: managed ? true : undefined });
    const form = h(
      'form',
      {},
      h('p', {}, member.email),
      message,
      managed ? h('p', { class: 'hint' }, OVERRIDE_HINT) : null,
      managed ? h('label', { class: 'check' }, override, 'Override the identity provider') : null,
      choice,
      member.mappedRoles.length
        ? h(
            'p',
            { class: 'hint' },
            `Also from group mappings: ${member.mappedRoles.join(', ')}. Change those under Groups and role mapping.`,
          )
        : null,
      h('div', { class: 'actions' }, save, h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel')),
    );
    const dialog = openDialog(`Edit roles`, form);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const chosen = choice.selected();
      if (chosen.length === 0) return setMessage(message, new Error('Choose at least one role.'));
      const saved = await busy(save, () =>
        attempt(
          () =>
            api('PUT', `/members/${member.accountId}/roles`, {
              roles: chosen,
              ...(managed ? { overrideIdp: override.checked } : {}),
            }),
          message,
        ),
      );
      if (!saved) return;
      dialog.close();
      await load();
      showStatus(`Roles of ${member.email} are now: ${saved.roles.join(', ')}.`);
    });
  }

  async function removeOne(member) {
    const managed = member.source === 'scim';
    const question = `Remove ${member.email} from ${session.organization.name}? Their account stays; they lose access to this organization.`;
    const ok = await confirmDialog(
      'Remove member',
      managed ? h('div', {}, h('p', {}, OVERRIDE_HINT), h('p', {}, question)) : question,
      managed ? 'Remove anyway' : 'Remove',
    );
    if (!ok) return;
    const done = await attempt(() =>
      api('DELETE', `/members/${member.accountId}${managed ? '?overrideIdp=true' : ''}`),
    );
    if (done === undefined) return;
    state.selected.delete(member.accountId);
    await load();
    showStatus(`${member.email} was removed.`);
  }

  async function removeMany() {
    const chosen = [...state.selected];
    const list = h(
      'ul',
      {},
      chosen.map(([, email]) => h('li', {}, email)),
    );
    const ok = await confirmDialog(
      `Remove ${chosen.length} member${chosen.length === 1 ? '' : 's'}`,
      h('div', {}, h('p', {}, 'Remove these people from the organization? Their accounts stay.'), list),
      'Remove them',
    );
    if (!ok) return;
    const answer = await attempt(() => api('POST', '/members/remove', { accountIds: chosen.map(([id]) => id) }));
    if (!answer) return;
    const emailOf = new Map(chosen);
    for (const r of answer.results) if (r.removed) state.selected.delete(r.accountId);
    await load();
    showStatus(`${answer.removed} removed${answer.failed ? `, ${answer.failed} not removed` : ''}.`);
    const failures = answer.results.filter((r) => !r.removed);
    if (failures.length) {
      const lines = failures.map((r) => `${emailOf.get(r.accountId)}: ${r.message}`);
      showError(new Error(`Not removed:\n${lines.join('\n')}`));
    }
  }

  async function withdrawInvite(member) {
    const ok = await confirmDialog(
      'Withdraw invitation',
      `Withdraw the invitation to ${member.email}? The link in their email stops working.`,
      'Withdraw',
    );
    if (!ok) return;
    if ((await attempt(() => api('DELETE', `/invitations/${member.invitation.id}`))) === undefined) return;
    state.selected.delete(member.accountId);
    await load();
    showStatus(`The invitation to ${member.email} was withdrawn.`);
  }

  async function resendInvite(member) {
    const sent = await attempt(() => api('POST', `/invitations/${member.invitation.id}/resend`));
    if (!sent) return;
    await load();
    showStatus(`A new invitation was sent to ${member.email}; it expires ${formatTime(sent.expiresAt)}.`);
  }

  await chooseTab(state.tab, false);
});

function roleBadges(member, roles) {
  const nameOf = (key) => roles.find((r) => r.key === key)?.name ?? key;
  const mappedOnly = member.mappedRoles.filter((r) => !member.roles.includes(r));
  return h(
    'span',
    {},
    member.roles.map((r) => h('span', { class: 'badge' }, nameOf(r))),
    mappedOnly.map((r) => h('span', { class: 'badge mapped', title: 'from a group mapping' }, `${nameOf(r)} (group)`)),
  );
}

/** The invite dialog: up to 20 addresses, role(s) and local groups; shows a result per address. */
function inviteDialog(roles, groups, organization, reload) {
  const MAX = 20;
  const emails = h('textarea', { name: 'emails', required: true, rows: 4, spellcheck: 'false' });
  const roleChoice = checkboxGroup(
    'Roles',
    roles.map((r) => ({ value: r.key, label: r.name })),
  );
  const groupChoice = checkboxGroup(
    'Groups',
    groups.map((g) => ({ value: g.id, label: g.displayName })),
  );
  const message = messageBox();
  const outcome = h('div', { role: 'status', 'aria-live': 'polite' });
  const send = h('button', { type: 'submit', class: 'primary' }, 'Send invitations');
  const form = h(
    'form',
    {},
    message,
    field('Email addresses', emails, `Up to ${MAX}, separated by spaces, commas or new lines.`),
    roleChoice,
    h('p', { class: 'hint' }, `No role chosen: the organization’s default role (${organization.defaultRole}).`),
    groupChoice,
    h('div', { class: 'actions' }, send, h('button', { type: 'button', onclick: () => dialog.close() }, 'Close')),
    outcome,
  );
  let invitedSome = false;
  const dialog = openDialog('Invite people', form, { onClose: () => invitedSome && reload() });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const addresses = [...new Set(emails.value.split(/[\s,;]+/).filter(Boolean))];
    if (addresses.length === 0) return setMessage(message, new Error('Enter at least one email address.'));
    if (addresses.length > MAX) {
      return setMessage(
        message,
        new Error(`That is ${addresses.length} addresses; at most ${MAX} at once. Use the CSV import for more.`),
      );
    }
    setMessage(message, null);
    const body = { emails: addresses, roles: roleChoice.selected(), groupIds: groupChoice.selected() };
    if (body.roles.length === 0) delete body.roles;
    const answer = await busy(send, async () => {
      try {
        return await api('POST', '/invitations', body);
      } catch (error) {
        // 400 with results: every address was refused; show why, per address.
        if (error.body?.results) return error.body;
        setMessage(message, error);
        return null;
      }
    });
    if (!answer) return;
    if (answer.invited > 0) invitedSome = true;
    replace(
      outcome,
      h('p', {}, `${answer.invited} invited, ${answer.failed} not invited.`),
      h(
        'ul',
        { class: 'results' },
        answer.results.map((r) =>
          h(
            'li',
            {},
            h('span', { class: `badge ${r.invited ? 'invited' : 'skipped'}` }, r.invited ? 'invited' : 'not invited'),
            ' ',
            r.email,
            r.invited ? '' : ` — ${r.message}`,
          ),
        ),
      ),
    );
    // Keep only the refused addresses in the box, to fix and send again.
    emails.value = answer.results
      .filter((r) => !r.invited)
      .map((r) => r.email)
      .join('\n');
  });
}
