// Webhooks: the organization's endpoints (add — the signing secret is shown once —, pause,
// delete), each endpoint's recent deliveries with what the receiver answered, its circuit
// breaker, and the dead letters with a retry.

import { api, query } from '../lib/api.js';
import {
  attempt,
  busy,
  confirmDialog,
  field,
  formatTime,
  h,
  latestOnly,
  messageBox,
  openDialog,
  replace,
  showStatus,
  table,
} from '../lib/dom.js';
import { showSecretOnce } from '../lib/secret.js';
import { startPage } from '../lib/shell.js';

const DELIVERY_PAGE = 20;

startPage(async (area, session) => {
  if (!session.can('org:manage')) {
    replace(area, h('p', {}, 'You need the permission org:manage to manage webhooks.'));
    return;
  }
  const endpointsArea = h('section', { 'aria-labelledby': 'endpoints-title' });
  const deliveriesArea = h('section', { 'aria-labelledby': 'deliveries-title', hidden: true });
  const deadArea = h('section', { 'aria-labelledby': 'dead-title' });
  replace(area, endpointsArea, deliveriesArea, deadArea);

  /** @type {any[]} */
  let endpoints = [];
  /** The endpoint whose deliveries are shown, and the `before` cursor of each page shown. */
  let shown = /** @type {{ endpoint: any, pages: (string | undefined)[] } | null} */ (null);

  const url = h('input', { name: 'url', type: 'url', required: true, autocomplete: 'off', spellcheck: 'false' });
  const events = h('input', { name: 'events', autocomplete: 'off', spellcheck: 'false' });
  const add = h('button', { type: 'submit', class: 'primary' }, 'Add endpoint');
  const addMessage = messageBox();
  const addForm = h(
    'form',
    { 'aria-labelledby': 'new-endpoint-title' },
    h('h3', { id: 'new-endpoint-title' }, 'New endpoint'),
    addMessage,
    h(
      'div',
      { class: 'toolbar' },
      field('Endpoint URL', url, 'HTTPS address that receives signed POSTs.'),
      field('Events', events, 'Comma-separated, e.g. member.joined, group.updated. Empty: all.'),
      add,
    ),
  );
  addForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const list = events.value
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean);
    const body = { url: url.value.trim(), ...(list.length ? { events: list } : {}) };
    const made = await busy(add, () => attempt(() => api('POST', '/webhooks', body), addMessage));
    if (!made) return;
    addForm.reset();
    await loadEndpoints();
    showSecretOnce(
      'Endpoint added',
      made.secret,
      'signing secret',
      ' Your receiver checks each request’s signature with it.',
    );
  });

  const fetchEndpoints = latestOnly(() => api('GET', '/webhooks'));
  async function loadEndpoints() {
    const answer = await fetchEndpoints();
    if (!answer) return;
    endpoints = answer.items;
    const rows = endpoints.map((e) => [
      h('code', { class: 'url' }, e.url),
      e.events.join(', '),
      e.enabled ? h('span', { class: 'badge active' }, 'enabled') : h('span', { class: 'badge revoked' }, 'disabled'),
      circuit(e),
      h(
        'div',
        { class: 'actions' },
        h(
          'button',
          { type: 'button', 'aria-label': `Show deliveries to ${e.url}`, onclick: () => showDeliveries(e) },
          'Deliveries',
        ),
        h(
          'button',
          { type: 'button', 'aria-label': `${e.enabled ? 'Disable' : 'Enable'} ${e.url}`, onclick: () => toggle(e) },
          e.enabled ? 'Disable' : 'Enable',
        ),
        h(
          'button',
          { type: 'button', class: 'danger', 'aria-label': `Delete ${e.url}`, onclick: () => remove(e) },
          'Delete',
        ),
      ),
    ]);
    replace(
      endpointsArea,
      h('h2', { id: 'endpoints-title' }, 'Endpoints'),
      h(
        'p',
        {},
        'Each event is POSTed as JSON, signed in the Orgsync-Signature header (HMAC-SHA256 with the endpoint’s secret).',
      ),
      table('Webhook endpoints', ['URL', 'Events', 'Status', 'Circuit breaker', 'Actions'], rows, {
        empty: 'No endpoints yet: add one below.',
      }),
      addForm,
    );
  }

  async function toggle(endpoint) {
    const changed = await attempt(() => api('PATCH', `/webhooks/${endpoint.id}`, { enabled: !endpoint.enabled }));
    if (!changed) return;
    await loadEndpoints();
    showStatus(`${endpoint.url} ${changed.enabled ? 'enabled' : 'disabled'}.`);
  }

  async function remove(endpoint) {
    const ok = await confirmDialog(
      'Delete endpoint',
      `Delete ${endpoint.url}? It gets no more events; deliveries still queued for it fail.`,
      'Delete',
    );
    if (!ok) return;
    if ((await attempt(() => api('DELETE', `/webhooks/${endpoint.id}`))) === undefined) return;
    if (shown?.endpoint.id === endpoint.id) {
      shown = null;
      deliveriesArea.hidden = true;
    }
    await loadEndpoints();
    showStatus(`${endpoint.url} deleted.`);
  }

  async function showDeliveries(endpoint) {
    shown = { endpoint, pages: [undefined] };
    await loadDeliveries();
    deliveriesArea.hidden = false;
    deliveriesArea.querySelector('h2')?.focus();
  }

  const fetchDeliveries = latestOnly((endpointId, before) =>
    api('GET', `/webhooks/${endpointId}/deliveries${query({ before, limit: DELIVERY_PAGE })}`),
  );
  async function loadDeliveries() {
    if (!shown) return;
    const current = shown;
    const answer = await fetchDeliveries(current.endpoint.id, current.pages.at(-1));
    if (!answer) return;
    const rows = answer.items.map((d) => [
      h(
        'span',
        {},
        h('code', { class: 'action' }, d.eventType),
        h('br'),
        h('span', { class: 'hint' }, `#${d.eventId}`),
      ),
      statusBadge(d.status),
      String(d.attempts),
      d.responseStatus ?? '—',
      d.lastError ?? '—',
      formatTime(d.deliveredAt ?? d.createdAt),
      h(
        'div',
        { class: 'actions' },
        h(
          'button',
          { type: 'button', 'aria-label': `Attempts of delivery ${d.id}`, onclick: () => showAttempts(d) },
          'Attempts',
        ),
        d.status === 'dead' ? retryButton(d) : null,
      ),
    ]);
    replace(
      deliveriesArea,
      h('h2', { id: 'deliveries-title', tabindex: '-1' }, `Deliveries to ${current.endpoint.url}`),
      table('Recent deliveries', ['Event', 'Status', 'Attempts', 'Response', 'Last error', 'When', 'Actions'], rows, {
        empty: 'No deliveries yet.',
      }),
      h(
        'nav',
        { class: 'actions', 'aria-label': 'Pages of deliveries' },
        h(
          'button',
          {
            type: 'button',
            disabled: current.pages.length === 1,
            onclick: () => (current.pages.pop(), loadDeliveries()),
          },
          '← Newer',
        ),
        h('span', {}, `Page ${current.pages.length}`),
        h(
          'button',
          {
            type: 'button',
            disabled: !answer.next,
            onclick: () => (current.pages.push(answer.next), loadDeliveries()),
          },
          'Older →',
        ),
      ),
    );
  }

  async function showAttempts(delivery) {
    const answer = await attempt(() => api('GET', `/deliveries/${delivery.id}/attempts`));
    if (!answer) return;
    const rows = answer.items.map((a, i) => [
      String(i + 1),
      formatTime(a.at),
      a.responseStatus ?? 'no answer',
      a.error ?? '—',
    ]);
    openDialog(
      `Attempts of delivery ${delivery.id}`,
      table('Attempts', ['#', 'When', 'Response', 'Error'], rows, { empty: 'Not attempted yet.' }),
      { wide: true },
    );
  }

  function retryButton(delivery) {
    const button = h(
      'button',
      {
        type: 'button',
        class: 'primary',
        'aria-label': `Retry delivery ${delivery.id}`,
        onclick: () => busy(button, () => retry([delivery.id])),
      },
      'Retry',
    );
    return button;
  }

  async function retry(ids) {
    const answer = await attempt(() => api('POST', '/deliveries/retry', ids ? { ids } : {}));
    if (!answer) return;
    showStatus(`${answer.retried} ${answer.retried === 1 ? 'delivery' : 'deliveries'} queued again.`);
    await Promise.all([loadDeadLetters(), loadDeliveries()]);
  }

  const fetchDeadLetters = latestOnly(() => api('GET', `/deliveries${query({ status: 'dead', limit: 200 })}`));
  async function loadDeadLetters() {
    const answer = await fetchDeadLetters();
    if (!answer) return;
    const target = (d) =>
      d.kind === 'webhook' ? (endpoints.find((e) => e.id === d.target)?.url ?? `deleted endpoint`) : d.target;
    const rows = answer.items.map((d) => [
      h(
        'span',
        {},
        h('code', { class: 'action' }, d.eventType),
        h('br'),
        h('span', { class: 'hint' }, `#${d.eventId}`),
      ),
      h('span', {}, `${d.kind}: `, h('code', { class: 'url' }, target(d))),
      String(d.attempts),
      d.responseStatus ?? '—',
      d.lastError ?? '—',
      retryButton(d),
    ]);
    const retryAll = h(
      'button',
      { type: 'button', disabled: rows.length === 0, onclick: () => busy(retryAll, () => retry(null)) },
      'Retry all',
    );
    replace(
      deadArea,
      h('h2', { id: 'dead-title' }, 'Dead letters'),
      h('p', {}, 'Deliveries that failed every attempt. Retrying puts them back in the queue with fresh attempts.'),
      table('Dead letters, oldest first', ['Event', 'Target', 'Attempts', 'Response', 'Last error', 'Retry'], rows, {
        empty: 'No dead letters.',
      }),
      h('div', { class: 'actions' }, retryAll),
    );
  }

  await loadEndpoints();
  await loadDeadLetters();
});

/** The circuit breaker of an endpoint: closed, open (paused until a time), or half-open (the next delivery is a trial). */
function circuit(endpoint) {
  const failures = endpoint.consecutiveFailures;
  const openUntil = endpoint.circuitOpenUntil ? new Date(endpoint.circuitOpenUntil) : null;
  if (openUntil && openUntil > new Date())
    return h('span', { class: 'badge revoked' }, `open until ${formatTime(openUntil)} (${failuresText(failures)})`);
  if (openUntil) return h('span', { class: 'badge pending' }, 'half-open: next delivery is a trial');
  return h('span', { class: 'badge active' }, failures ? `closed (${failuresText(failures)} in a row)` : 'closed');
}

function failuresText(count) {
  return count === 1 ? '1 failure' : `${count} failures`;
}

function statusBadge(status) {
  const kind = { delivered: 'active', pending: 'pending', dead: 'revoked' }[status] ?? '';
  return h('span', { class: `badge ${kind}` }, status);
}
