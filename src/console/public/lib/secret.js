// A new secret (a SCIM token, an API key) is shown once, in a dialog that says so, with a copy
// button; it is not kept anywhere in the page afterwards.

import { copyText, h, openDialog } from './dom.js';

/** `note` follows the warning: what the secret is for, or how orgsync keeps it. */
export function showSecretOnce(title, secret, what, note = ' orgsync keeps only a hash of it.') {
  const code = h('code', { id: 'new-secret' }, secret);
  const done = h('button', { type: 'button', class: 'primary', onclick: () => dialog.close() }, 'I have copied it');
  const dialog = openDialog(
    title,
    h(
      'div',
      { class: 'secret' },
      h('p', {}, h('strong', {}, `Copy the ${what} now: it is shown only this once.`), note),
      h(
        'div',
        { class: 'copy-row' },
        code,
        h('button', { type: 'button', onclick: () => copyText(secret, what) }, 'Copy'),
      ),
      h('div', { class: 'actions' }, done),
    ),
    { initialFocus: done },
  );
}
