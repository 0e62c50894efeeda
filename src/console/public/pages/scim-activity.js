// SCIM activity: what the IdP did with each SCIM token, newest first — method, path, the status
// it got and, for a refusal, the error it was told. Kept 30 days.

import { api, query } from '../lib/api.js';
import { attempt, field, formatTime, h, latestOnly, replace, table } from '../lib/dom.js';
import { startPage } from '../lib/shell.js';

const PAGE_SIZE = 50;

startPage(async (area, session) => {
  if (!session.can('org:manage')) {
    replace(area, h('p', {}, 'You need the permission org:manage to read the SCIM request log.'));
    return;
  }
  const answer = await attempt(() => api('GET', '/scim-tokens'));
  if (!answer) return;
  if (answer.tokens.length === 0) {
    replace(area, h('p', { class: 'notice' }, 'No SCIM tokens yet: create one on the Identity provider page.'));
    return;
  }
  const wanted = new URLSearchParams(location.search).get('token');
  const token = h(
    'select',
    { name: 'token' },
    answer.tokens.map((t) =>
      h('option', { value: t.id, selected: t.id === wanted }, t.revokedAt ? `${t.name} (revoked)` : t.name),
    ),
  );
  const results = h('div', {});
  replace(area, h('div', { class: 'toolbar' }, field('SCIM token', token, 'Requests made with this token.')), results);

  // The `before` cursor of each page shown so far.
  let pages = [undefined];
  token.addEventListener('change', () => {
    pages = [undefined];
    history.replaceState(null, '', query({ token: token.value }) || location.pathname);
    void load();
  });

  const fetchRequests = latestOnly(() =>
    api('GET', `/scim-tokens/${token.value}/requests${query({ before: pages.at(-1), limit: PAGE_SIZE })}`),
  );
  async function load() {
    const page = await fetchRequests();
    if (!page) return;
    const rows = page.items.map((r) => [
      formatTime(r.at),
      h('code', {}, r.method),
      h('code', { class: 'url' }, r.path),
      h('span', { class: `badge ${r.status >= 400 ? 'revoked' : 'active'}` }, String(r.status)),
      r.errorDetail ?? '—',
      `${Math.round(r.durationMs)} ms`,
    ]);
    replace(
      results,
      table(`SCIM requests, page ${pages.length}`, ['When', 'Method', 'Path', 'Status', 'Error', 'Duration'], rows, {
        empty: 'No requests with this token in the last 30 days.',
      }),
      h(
        'nav',
        { class: 'actions', 'aria-label': 'Pages of SCIM requests' },
        h('button', { type: 'button', disabled: pages.length === 1, onclick: () => (pages.pop(), load()) }, '← Newer'),
        h('span', {}, `Page ${pages.length}`),
        h(
          'button',
          { type: 'button', disabled: !page.next, onclick: () => (pages.push(page.next), load()) },
          'Older →',
        ),
      ),
    );
  }
  await load();
});
