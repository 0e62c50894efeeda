import { Router } from 'express';
import type { AppContext } from '../context.ts';

/** Placeholder until the admin adapter lands. */
export function adminRouter(_ctx: AppContext): Router {
  return Router();
}
