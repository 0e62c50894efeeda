// Audit log: who did what to whom, when and through which channel; newest first, with filters.

import { api, query } from '../lib/api.js';
import { attempt, field, formatTime, h, replace, table } from '../lib/dom.js';
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
  const action = h('input', { name: 'action', list: 'audit-actions', autocomplete: 'off', spellcheck: 'false' });
  const actions = h(
    'datalist',
    { id: 'audit-actions' },
    ACTIONS.map((a) => h('option', { value: a })),
  );
  const actor = h('input', { name: 'actor', autocomplete: 'off', spellcheck: 'false' });
  const target = h('input', { name: 'target', autocomplete: 'off', spellcheck: 'false' });
  const since = h('input', { name: 'since', type: 'datetime-local' });
  const until = h('input', { name: 'until', type: 'datetime-local' });
  const filters = h(
    'form',
    { class: 'toolbar', role: 'search', 'aria-label': 'Filter the audit log' },
    field('Action', action, 'member, invite, group… or exact, e.g. member.removed'),
    actions,
    field('Actor', actor, 'Email, key name or id'),
    field('Target id', target),
    field('From', since),
    field('Until', until),
    h('button', { type: 'submit' }, 'Filter'),
  );
  const results = h('div', {});
  replace(area, filters, results);

  // `pages` holds the `before` cursor of each page shown so far.
  let pages = [undefined];
  const filterValues = () => ({
    action: action.value.trim(),
    actor: actor.value.trim(),
    target: target.value.trim(),
    since: since.value ? new Date(since.value).toISOString() : undefined,
    until: until.value ? new Date(until.value).toISOString() : undefined,
  });
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    pages = [undefined];
    load();
  });

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
          pages = [undefined];
          load();
        },
      },
      value,
    );
  }

  async function load() {
    const answer = await attempt(() =>
      api('GET', `/audit${query({ ...filterValues(), before: pages.at(-1), limit: PAGE_SIZE })}`),
    );
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
      h('code', {}, e.action),
      e.targetId
        ? h(
            'span',
            {},
            e.targetType ? `${e.targetType} ` : '',
            filterButton(target, e.targetId, `Show only entries about ${e.targetType ?? ''} ${e.targetId}`),
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
