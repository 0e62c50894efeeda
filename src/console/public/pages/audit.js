// Audit log: who did what to whom, when and through which channel; newest first, with filters
// that stay applied while paging (and in the address, for a link or a reload), and an export of
// the filtered range as CSV or JSON Lines.

import { ApiError, CSRF_HEADER, adminKey, api, query } from '../lib/api.js';
import { attempt, busy, field, formatTime, h, latestOnly, replace, showStatus, table } from '../lib/dom.js';
import { startPage } from '../lib/shell.js';

const PAGE_SIZE = 50;
// `action=member` matches every member.* entry (the API matches a prefix before the dot).
const ACTIONS = [
  'member',
  'invite',
  'group',
  'mapping',
  'domain',
  'organization',
  'role',
  'webhook',
  'scim_credential',
  'admin_credential',
  'sso',
];

startPage(async (area, session) => {
  if (!session.can('members:manage')) {
    replace(area, h('p', {}, 'You need the permission members:manage to read the audit log.'));
    return;
  }
  const initial = new URLSearchParams(location.search);
  const action = h('input', {
    name: 'action',
    list: 'audit-actions',
    autocomplete: 'off',
    spellcheck: 'false',
    value: initial.get('action') ?? '',
  });
  const actions = h(
    'datalist',
    { id: 'audit-actions' },
    ACTIONS.map((a) => h('option', { value: a })),
  );
  const actor = h('input', {
    name: 'actor',
    autocomplete: 'off',
    spellcheck: 'false',
    value: initial.get('actor') ?? '',
  });
  const target = h('input', {
    name: 'target',
    autocomplete: 'off',
    spellcheck: 'false',
    value: initial.get('target') ?? '',
  });
  const since = h('input', { name: 'since', type: 'datetime-local', value: initial.get('since') ?? '' });
  const until = h('input', { name: 'until', type: 'datetime-local', value: initial.get('until') ?? '' });
  const filters = h(
    'form',
    { class: 'toolbar', role: 'search', 'aria-label': 'Filter the audit log' },
    field('Action', action, 'member, invite, group… or exact, e.g. member.removed'),
    actions,
    field('Actor', actor, 'Email, key name or id'),
    field('Target', target, 'Id, email or group name'),
    field('From', since),
    field('Until', until),
    h('button', { type: 'submit' }, 'Filter'),
  );
  const exportCsv = h('button', { type: 'button', onclick: () => exportAs('csv', exportCsv) }, 'Export CSV');
  const exportJsonl = h(
    'button',
    { type: 'button', onclick: () => exportAs('jsonl', exportJsonl) },
    'Export JSON Lines',
  );
  const exports = h(
    'div',
    { class: 'actions', role: 'group', 'aria-label': 'Export the filtered entries' },
    exportCsv,
    exportJsonl,
  );
  const results = h('div', {});
  replace(area, filters, exports, results);

  // `pages` holds the `before` cursor of each page shown so far; `applied` the filters they were
  // read with (editing a field without choosing Filter does not change what the pages show).
  let pages = [undefined];
  let applied = filterValues();
  function filterValues() {
    return {
      action: action.value.trim(),
      actor: actor.value.trim(),
      target: target.value.trim(),
      since: since.value ? new Date(since.value).toISOString() : undefined,
      until: until.value ? new Date(until.value).toISOString() : undefined,
    };
  }
  /** Shows page 1 of what the fields now say, and keeps the filters in the address. */
  function applyFilters() {
    applied = filterValues();
    pages = [undefined];
    const fields = { action: action.value.trim(), actor: actor.value.trim(), target: target.value.trim() };
    history.replaceState(null, '', query({ ...fields, since: since.value, until: until.value }) || location.pathname);
    return load();
  }
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    void applyFilters();
  });

  /** Downloads the filtered range (not only the page shown) from the export route. */
  async function exportAs(format, button) {
    await busy(button, () =>
      attempt(async () => {
        const headers = { [CSRF_HEADER]: '1' };
        const key = adminKey();
        if (key) headers.authorization = `Bearer ${key}`;
        const res = await fetch(`/api/audit/export${query({ ...applied, format })}`, {
          headers,
          credentials: 'same-origin',
        });
        if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
        const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1];
        const link = h('a', { href: URL.createObjectURL(await res.blob()), download: name ?? `audit.${format}` });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
        showStatus(`Exported ${name ?? 'the audit log'}.`);
      }),
    );
  }

  /** A value in the table that, chosen, becomes a filter. */
  function filterButton(input, value, label) {
    return h(
      'button',
      {
        type: 'button',
        class: 'link',
        'aria-label': label,
        onclick: () => {
          input.value = value;
          void applyFilters();
        },
      },
      value,
    );
  }

  const fetchEntries = latestOnly(() =>
    api('GET', `/audit${query({ ...applied, before: pages.at(-1), limit: PAGE_SIZE })}`),
  );

  async function load() {
    const answer = await fetchEntries();
    if (!answer) return;
    const rows = answer.items.map((e) => [
      formatTime(e.at),
      h(
        'span',
        {},
        filterButton(actor, e.actorName, `Show only entries by ${e.actorName}`),
        h('br'),
        h('span', { class: 'hint' }, `${e.actorType} via ${e.channel}`),
      ),
      h('code', { class: 'action' }, e.action),
      e.targetId
        ? h(
            'span',
            { class: 'target' },
            e.targetName && e.targetName !== e.targetId ? h('strong', {}, e.targetName) : null,
            e.targetName && e.targetName !== e.targetId ? h('br') : null,
            h('span', { class: 'hint' }, e.targetType ? `${e.targetType} ` : ''),
            filterButton(
              target,
              e.targetId,
              `Show only entries about ${e.targetType ?? ''} ${e.targetName ?? e.targetId}`,
            ),
          )
        : '—',
      summarize(e.details),
    ]);
    const previous = h(
      'button',
      { type: 'button', disabled: pages.length === 1, onclick: () => (pages.pop(), load()) },
      '← Newer',
    );
    const next = h(
      'button',
      { type: 'button', disabled: !answer.next, onclick: () => (pages.push(answer.next), load()) },
      'Older →',
    );
    replace(
      results,
      table('Audit log entries', ['When', 'Actor', 'Action', 'Target', 'Details'], rows, {
        empty: 'No entries match.',
      }),
      h(
        'nav',
        { class: 'actions', 'aria-label': 'Pages of the audit log' },
        previous,
        h('span', {}, `Page ${pages.length}`),
        next,
      ),
    );
  }
  await load();
});

/** The details object as short "key: value" lines (ids and nested values as compact JSON). */
function summarize(details) {
  const entries = Object.entries(details ?? {}).filter(([, v]) => v !== null && v !== undefined);
  if (entries.length === 0) return '—';
  return h(
    'span',
    { class: 'details' },
    entries
      .slice(0, 8)
      .map(([k, v], i) => [i ? h('br') : null, `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`]),
  );
}
