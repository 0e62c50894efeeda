// Forms whose errors show next to the field they concern: the admin API answers a 400 with
// `details.issues` ({path, message}), and each issue whose path names a field goes beside it.

import { field, h } from './dom.js';

/**
 * A labelled field with a place for its own error message, tied to the control
 * (aria-describedby, aria-invalid). `setError(message | null)` shows or clears it.
 * @param {string} labelText
 * @param {HTMLElement} control
 * @param {string} [hint]
 */
export function checkedField(labelText, control, hint) {
  return withError(field(labelText, control, hint), control);
}

/**
 * Adds an error message to a field's wrapper (a .field, or a fieldset of checkboxes).
 * @template {HTMLElement} T
 * @param {T} wrapper
 * @param {HTMLElement} [control] the element that gets aria-invalid (the wrapper itself when absent)
 */
export function withError(wrapper, control = wrapper) {
  const target = control;
  target.id ||= `field-${Math.random().toString(36).slice(2)}`;
  const error = h('span', { class: 'field-error', id: `${target.id}-error`, hidden: true });
  wrapper.append(error);
  const described = target.getAttribute('aria-describedby');
  target.setAttribute('aria-describedby', [described, error.id].filter(Boolean).join(' '));
  /** @param {string | null} message */
  const setError = (message) => {
    error.textContent = message ?? '';
    error.hidden = !message;
    if (message) target.setAttribute('aria-invalid', 'true');
    else target.removeAttribute('aria-invalid');
  };
  const focusTarget = control.matches('fieldset') ? control.querySelector('input') : control;
  return Object.assign(wrapper, { setError, focusTarget });
}

/**
 * Puts an API error's issues beside their fields (`fields` maps the body's property names to
 * checked fields) and moves focus to the first. Answers the issues no field took, as one message
 * (empty when every issue found its field).
 * @param {Record<string, ReturnType<typeof withError>>} fields
 * @param {any} error
 */
export function showFieldErrors(fields, error) {
  clearFieldErrors(fields);
  const issues = error?.details?.issues ?? [];
  const rest = [];
  let first = null;
  for (const issue of issues) {
    const wrapper = fields[String(issue.path).split('.')[0]];
    if (!wrapper) {
      rest.push(`${issue.path}: ${issue.message}`);
      continue;
    }
    wrapper.setError(sentence(issue.message));
    first ??= wrapper;
  }
  first?.focusTarget.focus();
  if (issues.length === 0) return error?.message ?? String(error);
  return rest.join('\n');
}

export function clearFieldErrors(fields) {
  for (const wrapper of Object.values(fields)) wrapper.setError(null);
}

const sentence = (text) => text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? '' : '.');
