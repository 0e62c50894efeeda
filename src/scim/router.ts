import { Router } from 'express';
import type { AppContext } from '../context.ts';

/** Placeholder until the scim adapter lands. */
export function scimRouter(_ctx: AppContext): Router {
  return Router();
}
