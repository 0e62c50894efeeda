// Small DOM helpers. Text always goes in as text nodes, never as HTML, so data from the API
// cannot inject markup.

const PROPERTIES = new Set([
  'checked',
  'value',
  'disabled',
  'indeterminate',
  'selected',
  'hidden',
  'multiple',
  'required',
]);

/** h('button', {type: 'button', onclick}, 'Save') → an element. Children may be strings, nodes, arrays, null. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (PROPERTIES.has(name)) el[name] = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

let uniqueId = 0;
/** A fresh id, for tying a label or description to its control. */
export function nextId(prefix = 'f') {
  uniqueId += 1;
  return `${prefix}-${uniqueId}`;
}

/** A labelled form field: h('label') around the text, with the control after it. */
export function field(labelText, control, hint) {
  control.id ||= nextId();
  const hintEl = hint ? h('span', { class: 'hint', id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, labelText), control, hintEl);
}

/** A group of checkboxes with a legend; `selected()` answers the checked values. */
export function checkboxGroup(legend, options, checked = [], name = nextId('cb')) {
  const boxes = options.map((o) =>
    h('input', { type: 'checkbox', name, value: o.value, checked: checked.includes(o.value), id: nextId() }),
  );
  const fieldset = h(
    'fieldset',
    { class: 'checks' },
    h('legend', {}, legend),
    options.length === 0 ? h('p', { class: 'hint' }, 'None yet.') : null,
    boxes.map((box, i) => h('label', { for: box.id, class: 'check' }, box, ' ', options[i].label)),
  );
  fieldset.selected = () => boxes.filter((b) => b.checked).map((b) => b.value);
  return fieldset;
}

// Page-level messages: errors in the alert region (announced), progress in the status region.
export function showError(error) {
  const el = $('#error');
  if (!error) {
    el.hidden = true;
    el.replaceChildren();
    return;
  }
  replace(el, error.message ?? String(error));
  el.hidden = false;
}

export function showStatus(text) {
  replace($('#status'), text ?? '');
}

/**
 * A loader of which only the latest call's answer counts: an earlier call answering late (a filter
 * applied while the page was still loading, a list reloaded twice) answers undefined instead, so
 * it cannot draw over the newer one. Only the latest call's outcome goes through `report` (attempt
 * by default: its error shown, earlier errors cleared); a superseded call's error shows nowhere.
 */
export function latestOnly(load, report = attempt) {
  let calls = 0;
  return async (...args) => {
    const call = ++calls;
    let outcome;
    try {
      const answer = await load(...args);
      outcome = async () => answer;
    } catch (error) {
      outcome = async () => {
        throw error;
      };
    }
    return call === calls ? report(outcome) : undefined;
  };
}

/**
 * Runs a load the admin did not ask for just now (a tab drawn in the background), showing its error
 * on the page; answers its result or undefined. Unlike attempt(), it clears no error when it
 * succeeds: finishing late, it would hide the error of something the admin did meanwhile.
 */
export async function inBackground(action) {
  try {
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  }
}

/**
 * Runs an action the admin asked for, showing its error on the page (or in `errorTarget`, a form's
 * own box); answers its result or undefined. When it succeeds, the errors of earlier actions go:
 * the page's, and the form's own.
 */
export async function attempt(action, errorTarget) {
  try {
    const result = await action();
    if (errorTarget) setMessage(errorTarget, null);
    showError(null);
    return result;
  } catch (error) {
    if (errorTarget) setMessage(errorTarget, error);
    else showError(error);
    return undefined;
  }
}

/** An inline alert inside a dialog or form. */
export function messageBox() {
  return h('div', { class: 'error', role: 'alert', hidden: true });
}

export function setMessage(box, error) {
  if (!error) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  replace(box, error.message ?? String(error));
  box.hidden = false;
}

/**
 * A modal dialog (native <dialog>: focus stays inside, Escape closes). Focus goes to the first
 * field (or the element given) and returns to whatever had it when the dialog closes.
 * @param {string} title
 * @param {Node | Node[]} content
 * @param {{ initialFocus?: HTMLElement, onClose?: () => void, wide?: boolean }} [options]
 */
export function openDialog(title, content, { initialFocus, onClose, wide } = {}) {
  const opener = /** @type {HTMLElement | null} */ (document.activeElement);
  const titleId = nextId('dlg');
  const closeButton = h('button', { type: 'button', class: 'close', 'aria-label': 'Close' }, '×');
  const dialog = h(
    'dialog',
    { 'aria-labelledby': titleId, class: wide ? 'wide' : undefined },
    h('div', { class: 'dialog-head' }, h('h2', { id: titleId }, title), closeButton),
    content,
  );
  closeButton.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    dialog.remove();
    onClose?.();
    if (opener && document.contains(opener)) opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  const target = initialFocus ?? dialog.querySelector('input, select, textarea, button:not(.close)');
  target?.focus();
  return dialog;
}

/** Asks to confirm; answers true when the confirm button was chosen. Focus starts on Cancel. */
export function confirmDialog(title, message, confirmLabel, { danger = true } = {}) {
  return new Promise((resolve) => {
    let confirmed = false;
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const ok = h('button', { type: 'button', class: danger ? 'danger' : 'primary' }, confirmLabel);
    const body = h(
      'div',
      {},
      typeof message === 'string' ? h('p', {}, message) : message,
      h('div', { class: 'actions' }, cancel, ok),
    );
    const dialog = openDialog(title, body, { initialFocus: cancel, onClose: () => resolve(confirmed) });
    dialog.setAttribute('role', 'alertdialog');
    cancel.addEventListener('click', () => dialog.close());
    ok.addEventListener('click', () => {
      confirmed = true;
      dialog.close();
    });
  });
}

export function formatTime(value) {
  if (!value) return '—';
  const date = new Date(value);
  return Number.isNaN(date.getTime())
    ? String(value)
    : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** A button that shows it is busy and cannot be pressed twice while `action` runs. */
export async function busy(button, action) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/** Copies text to the clipboard, saying so in the status region. */
export async function copyText(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    showStatus(`${what} copied.`);
  } catch {
    showStatus(`Copy failed: select the ${what} and copy it yourself.`);
  }
}

/** A value to copy into another system (an IdP's settings), with a Copy button. */
export function copyRow(label, value) {
  return h(
    'div',
    { class: 'field' },
    h('span', { class: 'label' }, label),
    h(
      'div',
      { class: 'copy-row' },
      h('code', {}, value),
      h('button', { type: 'button', 'aria-label': `Copy the ${label}`, onclick: () => copyText(value, label) }, 'Copy'),
    ),
  );
}

/** A table with a caption; `rows` are arrays of cells (node or text). Wrapped to scroll on narrow screens. */
export function table(caption, headers, rows, { empty = 'Nothing here yet.' } = {}) {
  return h(
    'div',
    { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h(
      'table',
      {},
      h('caption', { class: 'visually-hidden' }, caption),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          headers.map((text) => h('th', { scope: 'col' }, text)),
        ),
      ),
      h(
        'tbody',
        {},
        rows.length
          ? rows.map((cells) =>
              h(
                'tr',
                {},
                cells.map((c, i) =>
                  h('td', { 'data-label': typeof headers[i] === 'string' ? headers[i] : undefined }, c),
                ),
              ),
            )
          : h('tr', {}, h('td', { colspan: headers.length, class: 'empty' }, empty)),
      ),
    ),
  );
}
