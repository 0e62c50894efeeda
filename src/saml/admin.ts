import { Router } from 'express';
import type { AppContext } from '../context.ts';

/** Placeholder until the SAML adapter lands: SAML connection management under /api/saml. */
export function samlAdminRouter(_ctx: AppContext): Router {
  return Router();
}
