// The console talks to orgsync through the admin API only. A signed-in member's session cookie
// goes along by itself; an admin API key pasted at sign-in is kept in sessionStorage (this tab
// only, gone when it closes) and sent as a Bearer token. Every call carries X-Orgsync-Csrf: the
// API refuses a state-changing cookie call that shows neither it nor orgsync's own Origin.

const KEY_STORAGE = 'orgsync.console.adminKey';
export const CSRF_HEADER = 'x-orgsync-csrf';

export const base = document.body.dataset.base || '/console';

export function adminKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function rememberAdminKey(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
}

export function forgetAdminKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

/** An error answer of the admin API: `{error, message, details}` plus the HTTP status. */
export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.name = 'ApiError';
    this.status = status;
    this.code = body?.error ?? 'error';
    this.details = body?.details ?? {};
    this.body = body ?? {};
  }
}

function describe(status, body) {
  const message = body?.message || `the server answered ${status}`;
  if (status === 403 && body?.details?.missing)
    return `Not allowed: you lack the permission ${body.details.missing.join(', ')}.`;
  if (status === 404 && body?.error === 'not_found' && body?.message === 'no such endpoint')
    return 'This server does not offer that feature yet.';
  if (status === 413) return 'That is too large for the server.';
  // A 502 of the API's own (bad_gateway) is about a server orgsync called (an IdP's metadata
  // URL): its message says which and what it answered. Any other 5xx is orgsync's.
  if (status >= 500 && body?.error !== 'bad_gateway')
    return `The server failed (${status}). Try again; if it keeps failing, tell whoever runs orgsync.`;
  return message.charAt(0).toUpperCase() + message.slice(1) + (/[.!?]$/.test(message) ? '' : '.');
}

/**
 * Calls the admin API. `body` is sent as JSON, or as is when it is a string (give `contentType`).
 * Answers the parsed JSON (null for 204); throws ApiError. A 401 sends the browser to sign in.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {{ contentType?: string }} [options]
 */
export async function api(method, path, body, { contentType } = {}) {
  const headers = { accept: 'application/json', [CSRF_HEADER]: '1' };
  const key = adminKey();
  if (key) headers.authorization = `Bearer ${key}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    headers['content-type'] = typeof body === 'string' ? (contentType ?? 'text/plain') : 'application/json';
  }
  let res;
  try {
    res = await fetch(`/api${path}`, { method, headers, body: payload, credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, { error: 'network', message: 'could not reach the server; check your connection' });
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (res.status === 401 && !location.pathname.endsWith('/sign-in')) {
    goToSignIn(key ? 'expired' : 'required');
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/** Sends the browser to the sign-in page; `reason` is 'expired' or 'required'. */
export function goToSignIn(reason) {
  const params = new URLSearchParams({ returnTo: location.pathname + location.search });
  if (reason) params.set('reason', reason);
  location.assign(`${base}/sign-in?${params}`);
}

/** `{a: 1, b: undefined}` → `?a=1`, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
