import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router, type Response } from 'express';
import type { AppContext } from '../context.ts';

/** The console's pages: each is the same shell with its own title and one script module. */
export const PAGES = {
  'sign-in': { title: 'Sign in', nav: false },
  members: { title: 'Members', nav: true },
  import: { title: 'Import invitations', nav: true },
  groups: { title: 'Groups and role mapping', nav: true },
  identity: { title: 'Identity provider', nav: true },
  audit: { title: 'Audit log', nav: true },
  webhooks: { title: 'Webhooks', nav: true },
  'scim-activity': { title: 'SCIM activity', nav: true },
  settings: { title: 'Settings', nav: true },
  roles: { title: 'Roles', nav: true },
  'api-keys': { title: 'API keys', nav: true },
} as const;
type PageName = keyof typeof PAGES;

const PUBLIC_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'public');

// Scripts, styles and API calls come from this origin only; no inline code, no framing.
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/**
 * The admin console, served by orgsync itself: static HTML shells and plain ES modules from
 * `public/` that work through the admin API (/api) only — no server-side data access here.
 */
export function consoleRouter(_ctx: AppContext): Router {
  const router = Router();
  router.use((_req, res, next) => {
    res.set(SECURITY_HEADERS);
    next();
  });
  router.use('/assets', express.static(PUBLIC_DIR, { index: false, redirect: false, dotfiles: 'ignore', maxAge: 0 }));
  router.get('/', (req, res) => res.redirect(302, `${req.baseUrl}/members`));
  router.get('/:page', (req, res, next) => {
    const name = req.params.page as PageName;
    if (!Object.hasOwn(PAGES, name)) return next();
    sendPage(res, req.baseUrl, name);
  });
  router.use((_req, res) => {
    res.status(404).type('text/plain').send('no such console page');
  });
  return router;
}

function sendPage(res: Response, base: string, name: PageName): void {
  const page = PAGES[name];
  const nav = (Object.keys(PAGES) as PageName[])
    .filter((n) => PAGES[n].nav)
    .map(
      (n) => `<li><a href="${base}/${n}"${n === name ? ' aria-current="page"' : ''}>${escape(PAGES[n].title)}</a></li>`,
    )
    .join('');
  const header = page.nav
    ? `<header class="top"><div class="brand"><a href="${base}/members">orgsync</a> <span id="org-name" class="org"></span></div>
<nav aria-label="Console"><ul>${nav}</ul></nav>
<div class="who"><span id="who"></span> <button type="button" id="sign-out" class="link">Sign out</button></div></header>`
    : `<header class="top"><div class="brand">orgsync</div></header>`;
  res.set('cache-control', 'no-store').type('html').send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(page.title)} · orgsync console</title>
<link rel="stylesheet" href="${base}/assets/console.css">
<script type="module" src="${base}/assets/pages/${name}.js"></script>
</head><body data-base="${escape(base)}">
<a class="skip" href="#main">Skip to content</a>
${header}
<main id="main" tabindex="-1"><h1>${escape(page.title)}</h1>
<div id="error" class="error" role="alert" hidden></div>
<div id="status" class="status" role="status" aria-live="polite"></div>
<div id="page"><p class="loading">Loading…</p></div>
</main></body></html>`);
}
