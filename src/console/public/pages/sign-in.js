// Sign in: through the organization's SSO (SAML), or, for the first setup, with an admin API key.

import { api, base, forgetAdminKey, rememberAdminKey } from '../lib/api.js';
import { $, busy, field, h, messageBox, replace, setMessage, showStatus } from '../lib/dom.js';

const params = new URLSearchParams(location.search);
// Only console pages are allowed as a return address (no open redirect).
const wanted = params.get('returnTo') ?? '';
const returnTo =
  wanted.startsWith(`${base}/`) && !wanted.startsWith(`${base}/sign-in`) && !wanted.includes('//')
    ? wanted
    : `${base}/members`;

function ssoForm() {
  // ?org=acme-corp fills it in, so an organization can hand out a ready sign-in link.
  const slug = h('input', {
    name: 'organization',
    autocomplete: 'organization',
    required: true,
    pattern: '[a-z0-9-]+',
    spellcheck: 'false',
    value: params.get('org') ?? '',
  });
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'sso-title' },
    h('h2', { id: 'sso-title' }, 'Single sign-on'),
    h('p', {}, 'Members sign in through their organization’s identity provider (Okta, Entra ID, …).'),
    field('Organization', slug, 'Its short name as in your sign-in link, for example acme-corp.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Continue with SSO')),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const organization = slug.value.trim().toLowerCase();
    location.assign(`/saml/${encodeURIComponent(organization)}/login?returnTo=${encodeURIComponent(returnTo)}`);
  });
  return form;
}

function keyForm() {
  const key = h('input', {
    type: 'password',
    name: 'adminKey',
    autocomplete: 'off',
    required: true,
    spellcheck: 'false',
  });
  const message = messageBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in with the key');
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'key-title' },
    h('h2', { id: 'key-title' }, 'Admin API key (first setup)'),
    h(
      'p',
      {},
      'Before SSO is set up, use an admin API key made with ',
      h('code', {}, 'npx orgsync api-key create'),
      '. It is kept in this browser tab only and forgotten when the tab closes.',
    ),
    message,
    field('Admin API key', key, 'Starts with oskey_.'),
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(submit, async () => {
      rememberAdminKey(key.value.trim());
      try {
        await api('GET', '/organization');
        location.assign(returnTo);
      } catch (error) {
        forgetAdminKey();
        setMessage(
          message,
          error.status === 401
            ? new Error('That admin API key is not valid: it may be mistyped, revoked or expired.')
            : error,
        );
        key.focus();
      }
    });
  });
  return form;
}

const area = $('#page');
const signedIn = h('div', {});
replace(area, signedIn, h('div', { class: 'cards' }, ssoForm(), keyForm()));

// Someone already signed in (through SSO, or with a key in this tab) can go straight on.
api('GET', '/organization').then(
  (organization) =>
    replace(
      signedIn,
      h(
        'p',
        { class: 'notice' },
        `You are signed in as ${organization.you.actor} (${organization.name}). `,
        h('a', { href: returnTo }, 'Open the console'),
      ),
    ),
  () => {},
);
if (params.get('signedOut')) showStatus('You are signed out of the console in this tab.');
if (params.get('left')) showStatus('You have left the organization and are signed out.');
// Fixed texts only: the address must not be able to put words on this page.
const REASONS = {
  expired: 'That admin API key is no longer valid. Sign in again.',
  required: 'Sign in to use the console.',
};
const reason = REASONS[params.get('reason')];
if (reason) showStatus(reason);
