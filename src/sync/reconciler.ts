import cron, { type ScheduledTask } from 'node-cron';
import type { AppContext } from '../context.ts';
import { systemActor } from '../core/actor.ts';
import { acceptArrivedInvitations, expireInvitations } from '../core/invitation-lifecycle.ts';
import { postgresRunCoordinator, pruneJobRuns } from './coordinator.ts';
import { deliverDue, type Senders } from './deliver.ts';
import { dispatchEvents, pruneOutbox, type EventHandler } from './outbox.ts';
import { pruneSsoAttempts } from '../saml/attempts.ts';
import { pruneScimRequests } from '../scim/request-log.ts';
import { repairMappedRoles } from './roles.ts';
import { defaultSenders } from './senders.ts';

export interface RunSummary {
  invitationsExpired: number;
  invitationsAccepted: number;
  eventsDispatched: number;
  eventsRetrying: number;
  eventsFailed: number;
  delivered: number;
  retrying: number;
  dead: number;
  jobRunsPruned: number;
  scimRequestsPruned: number;
  ssoAttemptsPruned: number;
  eventsPruned: number;
  deliveriesPruned: number;
  rolesRepaired: number;
  durationMs: number;
}

type Counts = Partial<Omit<RunSummary, 'durationMs'>>;

const reconciler = systemActor('sync', 'reconciler');

/**
 * Keeps organization state converging: expires and matches invitations, dispatches domain
 * events (internal handlers, email and webhook deliveries) and delivers them with retries.
 * Safe with several instances on one database: event and delivery work is claimed row by row
 * with SKIP LOCKED, and each tick of a periodic job is claimed by exactly one instance.
 */
export class Reconciler {
  private tasks: ScheduledTask[] = [];
  private inFlight = new Set<Promise<unknown>>();

  constructor(
    private readonly ctx: AppContext,
    private readonly handlers: EventHandler[] = [],
    private readonly senders: Senders = defaultSenders(ctx),
  ) {}

  async invitations(): Promise<Counts> {
    return {
      invitationsExpired: await expireInvitations(this.ctx.sql, reconciler),
      invitationsAccepted: await acceptArrivedInvitations(this.ctx.sql, reconciler),
    };
  }

  async events(): Promise<Counts> {
    const { delivery } = this.ctx.config.reconciler;
    const counts = { eventsDispatched: 0, eventsRetrying: 0, eventsFailed: 0 };
    for (;;) {
      // Ends: each batch dispatches its events or pushes the failing ones back (backoff) or aside.
      const batch = await dispatchEvents(this.ctx.sql, this.handlers, { policy: delivery, log: this.ctx.log });
      if (batch.dispatched + batch.retrying + batch.failed === 0) break;
      counts.eventsDispatched += batch.dispatched;
      counts.eventsRetrying += batch.retrying;
      counts.eventsFailed += batch.failed;
    }
    const outcomes = await deliverDue(this.ctx.sql, this.senders, delivery, { concurrency: delivery.concurrency });
    return { ...counts, ...outcomes };
  }

  async roles(): Promise<Counts> {
    return { rolesRepaired: await repairMappedRoles(this.ctx.sql) };
  }

  async housekeeping(): Promise<Counts> {
    const outbox = await pruneOutbox(this.ctx.sql);
    return {
      eventsPruned: outbox.events,
      deliveriesPruned: outbox.deliveries,
      jobRunsPruned: await pruneJobRuns(this.ctx.sql),
      scimRequestsPruned: await pruneScimRequests(this.ctx.sql),
      ssoAttemptsPruned: await pruneSsoAttempts(this.ctx.sql),
    };
  }

  /** Runs every job now, in order, and reports what changed. */
  async runOnce(): Promise<RunSummary> {
    const started = performance.now();
    const counts = {
      ...(await this.invitations()),
      ...(await this.events()),
      ...(await this.roles()),
      ...(await this.housekeeping()),
    };
    const summary = { ...emptySummary(), ...counts, durationMs: Math.round(performance.now() - started) };
    this.ctx.log.info({ job: 'all', ...summary }, 'reconciler run');
    return summary;
  }

  start(): void {
    const { eventsSchedule, invitesSchedule, rolesSchedule } = this.ctx.config.reconciler;
    const coordinator = postgresRunCoordinator(this.ctx.sql);
    // Every instance polls events: the work is shared out row by row.
    this.schedule('events', eventsSchedule, () => this.events(), false);
    this.schedule('invitations', invitesSchedule, () => this.invitations(), true, coordinator);
    this.schedule('roles', rolesSchedule, () => this.roles(), true, coordinator);
    this.schedule('housekeeping', '17 3 * * *', () => this.housekeeping(), true, coordinator);
  }

  /** Stops the schedules and waits for jobs that are running. */
  async stop(): Promise<void> {
    await Promise.all(this.tasks.map((t) => Promise.resolve(t.stop())));
    this.tasks = [];
    await Promise.allSettled([...this.inFlight]);
  }

  private schedule(
    name: string,
    expression: string,
    job: () => Promise<Counts>,
    oncePerTick: boolean,
    coordinator?: ReturnType<typeof postgresRunCoordinator>,
  ): void {
    const run = async () => {
      const started = performance.now();
      const work = job();
      this.inFlight.add(work);
      try {
        const counts = await work;
        const changed = Object.values(counts).some((n) => n);
        this.ctx.log[changed ? 'info' : 'debug'](
          { job: name, ...counts, durationMs: Math.round(performance.now() - started) },
          'reconciler job',
        );
      } catch (error) {
        this.ctx.log.error({ job: name, err: error }, 'reconciler job failed');
      } finally {
        this.inFlight.delete(work);
      }
    };
    this.tasks.push(
      cron.schedule(expression, run, {
        name: `orgsync:${name}`,
        noOverlap: true,
        ...(oncePerTick ? { distributed: true, runCoordinator: coordinator } : {}),
      }),
    );
  }
}

function emptySummary(): Omit<RunSummary, 'durationMs'> {
  return {
    invitationsExpired: 0,
    invitationsAccepted: 0,
    eventsDispatched: 0,
    eventsRetrying: 0,
    eventsFailed: 0,
    delivered: 0,
    retrying: 0,
    dead: 0,
    jobRunsPruned: 0,
    scimRequestsPruned: 0,
    ssoAttemptsPruned: 0,
    eventsPruned: 0,
    deliveriesPruned: 0,
    rolesRepaired: 0,
  };
}
