import { Router } from 'express';
import type { AppContext } from '../context.ts';

/** Placeholder until the saml adapter lands. */
export function samlRouter(_ctx: AppContext): Router {
  return Router();
}
