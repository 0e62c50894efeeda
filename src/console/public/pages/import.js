// CSV import: up to 1,000 rows (columns `email` and `group membership`), run by the server as a
// background job: a progress bar follows it (polling), then the page shows, row by row, who was
// invited and who was skipped and why, and lets the admin download that summary.

import { api, base, query } from '../lib/api.js';
import { busy, checkboxGroup, field, h, messageBox, replace, setMessage, showStatus, table } from '../lib/dom.js';
import { startPage } from '../lib/shell.js';

const MAX_ROWS = 1000;
const MAX_BYTES = 2 * 1024 * 1024;
const POLL_MS = 500;

startPage(async (area, session) => {
  if (!session.can('members:manage')) {
    replace(area, h('p', {}, 'You need the permission members:manage to invite people.'));
    return;
  }
  const { items: roles } = await api('GET', '/roles');
  const file = h('input', { type: 'file', name: 'file', accept: '.csv,text/csv' });
  const roleChoice = checkboxGroup(
    'Roles for everyone in the file',
    roles.map((r) => ({ value: r.key, label: r.name })),
  );
  const message = messageBox();
  const upload = h('button', { type: 'submit', class: 'primary' }, 'Upload and invite');
  const result = h('section', { 'aria-labelledby': 'result-title', hidden: true });
  const bar = h('progress', { id: 'import-progress', max: 1, value: 0 });
  const barText = h('span', { id: 'import-progress-text' });
  const progress = h(
    'div',
    { class: 'progress', hidden: true },
    h('label', { for: bar.id }, 'Import progress'),
    bar,
    barText,
  );
  const form = h(
    'form',
    {},
    h(
      'p',
      {},
      'A CSV file with a header row and the columns ',
      h('code', {}, 'email'),
      ' and ',
      h('code', {}, 'group membership'),
      ` (local group names, comma-separated in the cell). Up to ${MAX_ROWS.toLocaleString('en')} rows; other columns are ignored. Uploading the same file again invites nobody twice. `,
      h(
        'a',
        { href: `${base.replace(/\/console$/, '')}/api/invitations/imports/example.csv`, download: '' },
        'Download an example file',
      ),
      '.',
    ),
    message,
    field('CSV file', file),
    roleChoice,
    h('p', { class: 'hint' }, `No role chosen: the organization’s default role (${session.organization.defaultRole}).`),
    h('div', { class: 'actions' }, upload),
  );
  replace(area, form, progress, result);

  /** Shows the job's rows done of total until it ends; returns the finished job. */
  async function follow(job) {
    progress.hidden = false;
    for (;;) {
      bar.max = job.total;
      bar.value = job.done;
      replace(barText, `${job.done.toLocaleString('en')} of ${job.total.toLocaleString('en')} rows`);
      if (job.status !== 'running') return job;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      job = await api('GET', `/invitations/imports/${job.id}`);
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = file.files?.[0];
    if (!chosen) return setMessage(message, new Error('Choose a CSV file first.'));
    if (chosen.size > MAX_BYTES)
      return setMessage(message, new Error(`The file is ${(chosen.size / 1048576).toFixed(1)} MB; at most 2 MB.`));
    setMessage(message, null);
    const picked = roleChoice.selected();
    await busy(upload, async () => {
      showStatus(`Importing ${chosen.name}…`);
      try {
        result.hidden = true;
        const started = await api(
          'POST',
          `/invitations/imports${query({ roles: picked.join(','), fileName: chosen.name })}`,
          await chosen.text(),
          { contentType: 'text/csv' },
        );
        const answer = await follow(started);
        if (answer.status === 'failed') throw new Error(`The import stopped: ${answer.error}`);
        showStatus(`${chosen.name}: ${answer.invited} invited, ${answer.skipped} skipped of ${answer.total} rows.`);
        showResult(result, chosen.name, answer);
      } catch (error) {
        showStatus('');
        setMessage(message, error);
        progress.hidden = true;
      }
    });
  });
});

function showResult(section, fileName, answer) {
  const onlySkipped = h('input', { type: 'checkbox', id: 'only-skipped' });
  const rowsOf = (rows) =>
    rows.map((r) => [
      String(r.row),
      r.email || '(empty)',
      h('span', { class: `badge ${r.status}` }, r.status),
      r.errors.join('; ') || '—',
    ]);
  const tableArea = h('div', {});
  const draw = () => {
    const rows = onlySkipped.checked ? answer.rows.filter((r) => r.status === 'skipped') : answer.rows;
    replace(
      tableArea,
      table('Import result, row by row', ['Row', 'Email', 'Result', 'Why skipped'], rowsOf(rows), {
        empty: 'No skipped rows.',
      }),
    );
  };
  onlySkipped.addEventListener('change', draw);
  const download = h(
    'a',
    { class: 'button', download: `${fileName.replace(/\.csv$/i, '')}-import-result.csv` },
    'Download the result (CSV)',
  );
  download.href = URL.createObjectURL(new Blob([resultCsv(answer.rows)], { type: 'text/csv' }));
  draw();
  replace(
    section,
    h('h2', { id: 'result-title' }, 'Result'),
    h('p', {}, `${answer.total} rows: ${answer.invited} invited, ${answer.skipped} skipped.`),
    h(
      'div',
      { class: 'actions' },
      download,
      h('label', { for: onlySkipped.id, class: 'check' }, onlySkipped, ' Show skipped rows only'),
    ),
    tableArea,
  );
  section.hidden = false;
}

/** The summary as CSV: row, email, status, reasons (quoted where needed). */
export function resultCsv(rows) {
  // A leading ' keeps spreadsheets from running a cell that starts like a formula.
  const safe = (value) => (/^[=+\-@\t\r]/.test(value) ? `'${value}` : value);
  const cell = (value) => (/[",\n\r]/.test(safe(value)) ? `"${safe(value).replace(/"/g, '""')}"` : safe(value));
  const lines = [
    ['row', 'email', 'status', 'reasons'],
    ...rows.map((r) => [String(r.row), r.email, r.status, r.errors.join('; ')]),
  ];
  return lines.map((line) => line.map(cell).join(',')).join('\r\n') + '\r\n';
}
