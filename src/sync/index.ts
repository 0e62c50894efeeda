import type { AppContext } from '../context.ts';
import { Reconciler } from './reconciler.ts';
import { recomputeRolesOnEvents } from './roles.ts';

/** The reconciler with every event handler and sender orgsync has. */
export function createReconciler(ctx: AppContext): Reconciler {
  return new Reconciler(ctx, [recomputeRolesOnEvents]);
}
