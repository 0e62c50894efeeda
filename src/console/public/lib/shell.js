// What every signed-in page does first: find out who is calling (GET /api/organization), show
// the organization and the caller, wire "Sign out", then hand the page area to the page module.

import { CSRF_HEADER, api, base, forgetAdminKey } from './api.js';
import { $, replace, showError } from './dom.js';

/**
 * Starts a console page. `render(area, session)` draws into the page area; `session` has the
 * organization, the caller's permissions and `can(permission)`.
 */
export async function startPage(render) {
  $('#sign-out')?.addEventListener('click', async () => {
    forgetAdminKey();
    // Ends an SSO session too; where SAML sign-in is not there, the call changes nothing.
    await fetch('/saml/logout', { method: 'POST', credentials: 'same-origin', headers: { [CSRF_HEADER]: '1' } }).catch(
      () => {},
    );
    location.assign(`${base}/sign-in?signedOut=1`);
  });
  const area = $('#page');
  let organization;
  try {
    organization = await api('GET', '/organization');
  } catch (error) {
    if (error.status !== 401) showError(error);
    replace(area);
    return;
  }
  replace($('#org-name'), organization.name);
  replace($('#who'), `Signed in as ${organization.you.actor}`);
  const permissions = organization.you.permissions;
  const session = { organization, permissions, can: (permission) => permissions.includes(permission) };
  replace(area);
  // Busy until the page has drawn (assistive technology waits; so do the browser tests).
  area.setAttribute('aria-busy', 'true');
  try {
    await render(area, session);
  } catch (error) {
    showError(error);
  } finally {
    area.removeAttribute('aria-busy');
  }
}
