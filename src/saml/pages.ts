import type { Response } from 'express';

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/**
 * The page a person sees when sign-in does not work: what happened, the reason code an admin
 * finds in the SSO attempt log, and whom to ask.
 */
export function sendSsoErrorPage(
  res: Response,
  status: number,
  page: { title: string; message: string; reason?: string; contacts?: string[] },
): void {
  const contacts = page.contacts?.length
    ? `<p>Ask an administrator of this organization for access: ${page.contacts.map((c) => `<a href="mailto:${escapeHtml(c)}">${escapeHtml(c)}</a>`).join(', ')}.</p>`
    : '<p>If you think this is wrong, contact an administrator of your organization.</p>';
  res
    .status(status)
    .type('html')
    .setHeader('cache-control', 'no-store')
    .setHeader('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'").send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(page.title)}</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>${escapeHtml(page.title)}</h1>
<p>${escapeHtml(page.message)}</p>
${page.reason ? `<p>Reason code: <code data-reason="${escapeHtml(page.reason)}">${escapeHtml(page.reason)}</code></p>` : ''}
${contacts}
</body></html>
`);
}
