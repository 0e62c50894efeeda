/**
 * src/sync is the reconciler's home, by design: everything that makes organization state converge
 * after a change committed (dispatching domain events from the outbox, recomputing mapped roles,
 * expiring and matching invitations, delivering emails and webhooks with retries, housekeeping).
 * It owns the queue tables (outbox, deliveries, job_runs) and changes organization state only
 * through core/ functions; see ARCHITECTURE.md.
 */
import type { AppContext } from '../context.ts';
import { Reconciler } from './reconciler.ts';
import { recomputeRolesOnEvents } from './roles.ts';

/** The reconciler with every event handler and sender orgsync has. */
export function createReconciler(ctx: AppContext): Reconciler {
  return new Reconciler(ctx, [recomputeRolesOnEvents]);
}
