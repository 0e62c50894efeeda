/**
 * Where a login may send the browser afterwards: a path on orgsync (relative, or an absolute URL
 * under PUBLIC_URL) or a URL under one of the connection's allowed return URLs. Anything else
 * answers null, so a crafted link cannot turn sign-in into an open redirect.
 */
export function allowedReturnTo(raw: string, publicUrl: string, allowedPrefixes: readonly string[]): string | null {
  if (raw.length === 0 || raw.length > 2048 || hasControlOrBackslash(raw)) return null;
  const isRelative = raw.startsWith('/') && !raw.startsWith('//');
  let url: URL;
  try {
    url = isRelative ? new URL(raw, `${publicUrl}/`) : new URL(raw);
  } catch {
    return null;
  }
  if (url.username || url.password) return null;
  const prefixes = [publicUrl, ...allowedPrefixes];
  return prefixes.some((prefix) => isUnder(url, prefix)) ? url.toString() : null;
}

function isUnder(url: URL, prefix: string): boolean {
  let base: URL;
  try {
    base = new URL(prefix);
  } catch {
    return false;
  }
  if (url.origin !== base.origin) return false;
  const path = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
  return url.pathname === base.pathname || url.pathname.startsWith(path);
}

/** Control characters (which browsers strip, changing the URL) or a backslash (read as a slash). */
function hasControlOrBackslash(raw: string): boolean {
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code <= 0x1f || code === 0x7f || code === 0x5c) return true;
  }
  return false;
}
