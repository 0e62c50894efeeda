import crypto from 'node:crypto';
import os from 'node:os';
import cron, { type RunCoordinator, type ScheduledTask } from 'node-cron';
import type { AppContext } from '../context.ts';
import { systemActor } from '../core/actor.ts';
import { pruneInvitationImports } from '../core/invitation-import-jobs.ts';
import { acceptArrivedInvitations, expireInvitations } from '../core/invitation-lifecycle.ts';
import { postgresRunCoordinator, pruneJobRuns } from './coordinator.ts';
import type { Delivery, Outcome, Senders } from './deliver.ts';
import { Lane, type LaneResult } from './lane.ts';
import { Sending, type SendingOptions } from './sending.ts';
import { dispatchEvents, pruneDeliveryAttempts, pruneOutbox, type EventHandler } from './outbox.ts';
import { pruneSsoAttempts } from '../saml/attempts.ts';
import { refreshDueMetadata } from '../saml/metadata-refresh.ts';
import { pruneScimRequests } from '../scim/request-log.ts';
import { createTxtLookup } from '../core/domain-dns.ts';
import { recheckVerifiedDomains } from '../core/domains.ts';
import { repairMappedRoles } from './roles.ts';
import { defaultSenders } from './senders.ts';
import { maintainTables } from '../storage/maintenance.ts';

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
  invitationImportsPruned: number;
  eventsPruned: number;
  deliveriesPruned: number;
  deliveryAttemptsPruned: number;
  rolesRepaired: number;
  durationMs: number;
}

type Counts = Partial<Omit<RunSummary, 'durationMs'>>;

const reconciler = systemActor('sync', 'reconciler');
/** Dispatch runs at most this many batches (or this long) before yielding to a fresh run. */
const DISPATCH_BUDGET = { batches: 25, ms: 2_000 };
/**
 * Under a stream of commits, dispatch runs at most this often (each NOTIFY during a run asks for
 * one more): a run then takes the events of 50 ms in one batch instead of a few events per run.
 */
const DISPATCH_SETTLE_MS = 50;
/** A delivery lane claims at most this many deliveries (or for this long) per run. */
const SEND_BUDGET = { rows: 500, ms: 1_000 };
/** Where the outbox insert trigger notifies (migration 060). */
export const OUTBOX_CHANNEL = 'orgsync_outbox';

/**
 * Keeps organization state converging: expires and matches invitations, dispatches domain
 * events (internal handlers such as role mapping, then email and webhook deliveries) and sends
 * the deliveries with retries. The work runs in lanes that never wait on each other: event
 * dispatch, email sending, webhook sending, and the periodic jobs. Dispatch wakes on the outbox's
 * NOTIFY (PostgreSQL) and on its schedule (the safety net, and the only trigger with the
 * embedded database). Safe with several instances on one database: events are claimed with SKIP
 * LOCKED, deliveries with a lease, and each tick of a periodic job by exactly one instance.
 */
export class Reconciler {
  readonly instanceId = `${os.hostname()}:${process.pid}:${crypto.randomBytes(3).toString('hex')}`;
  readonly lanes: Record<
    'dispatch' | Delivery['kind'] | 'invitations' | 'roles' | 'housekeeping' | 'domains' | 'metadata' | 'maintenance',
    Lane
  >;
  private readonly sending: Record<Delivery['kind'], Sending>;
  private tasks: ScheduledTask[] = [];
  private listening: Promise<void> = Promise.resolve();
  private readonly claims = new Set<Promise<boolean>>();

  constructor(
    private readonly ctx: AppContext,
    private readonly handlers: EventHandler[] = [],
    senders: Senders = defaultSenders(ctx),
  ) {
    const { delivery, webhookEndpointConcurrency, breaker } = ctx.config.reconciler;
    const sending = (kind: Delivery['kind'], options: Partial<SendingOptions> = {}) =>
      new Sending(ctx.sql, {
        kind,
        sender: senders[kind],
        policy: delivery,
        concurrency: delivery.concurrency,
        claimedBy: this.instanceId,
        log: ctx.log,
        onSlotFree: () => this.lanes[kind].wake(),
        ...options,
      });
    this.sending = {
      email: sending('email'),
      webhook: sending('webhook', { perTarget: webhookEndpointConcurrency, breaker }),
    };
    const lane = (name: string, job: () => Promise<LaneResult>) => new Lane(name, job, ctx.log);
    this.lanes = {
      dispatch: new Lane('dispatch', () => this.dispatch(DISPATCH_BUDGET), ctx.log, DISPATCH_SETTLE_MS),
      email: lane('email', () => this.send('email')),
      webhook: lane('webhook', () => this.send('webhook')),
      invitations: lane('invitations', () => this.invitations()),
      roles: lane('roles', () => this.roles()),
      housekeeping: lane('housekeeping', () => this.housekeeping()),
      domains: lane('domains', () => this.domains()),
      metadata: lane('metadata', () => this.samlMetadata()),
      maintenance: lane('maintenance', async () => {
        const { vacuumed, analyzed } = await maintainTables(ctx.sql);
        return { tablesVacuumed: vacuumed.length, tablesAnalyzed: analyzed.length };
      }),
    };
  }

  async invitations(): Promise<Counts> {
    return {
      invitationsExpired: await expireInvitations(this.ctx.sql, reconciler),
      invitationsAccepted: await acceptArrivedInvitations(this.ctx.sql, reconciler),
    };
  }

  /**
   * Dispatches due events batch by batch until a batch is not full or the budget is spent (then
   * `more` asks the lane for another run). A batch that is not full took every due event it saw:
   * events committed since then have notified the lane, which runs again; so no extra empty claim
   * is made per run. (With over 1,000 organizations holding undispatched events, those beyond the
   * claim's scan wait for the next scheduled run.) A batch that made deliveries wakes the sending lanes.
   */
  async dispatch(budget = { batches: Infinity, ms: Infinity }): Promise<Counts & { more: boolean }> {
    const { delivery } = this.ctx.config.reconciler;
    const counts = { eventsDispatched: 0, eventsRetrying: 0, eventsFailed: 0 };
    const deadline = performance.now() + budget.ms;
    for (let batches = 0; batches < budget.batches && performance.now() < deadline; batches++) {
      // Ends: each batch dispatches its events or pushes the failing ones back (backoff) or aside.
      const batch = await dispatchEvents(this.ctx.sql, this.handlers, { policy: delivery, log: this.ctx.log });
      counts.eventsDispatched += batch.dispatched;
      counts.eventsRetrying += batch.retrying;
      counts.eventsFailed += batch.failed;
      if (batch.deliveries > 0) {
        this.lanes.email.wake();
        this.lanes.webhook.wake();
      }
      if (!batch.full) return { ...counts, more: false };
    }
    return { ...counts, more: true };
  }

  /** Starts due deliveries of one kind in the free send slots; does not wait for the sends. */
  private async send(kind: Delivery['kind']): Promise<LaneResult> {
    const { claimed, more } = await this.sending[kind].fill({
      rows: SEND_BUDGET.rows,
      deadline: performance.now() + SEND_BUDGET.ms,
    });
    return { [`${kind}Claimed`]: claimed, more };
  }

  /**
   * Dispatches every due event, then sends every due delivery and waits for the sends (the CLI's
   * `reconcile --once`, tests). Counts are of this call's dispatch and of the outcomes recorded meanwhile.
   */
  async events(): Promise<Counts> {
    const { more: _more, ...dispatched } = await this.dispatch();
    const before = this.outcomes();
    await Promise.all(Object.values(this.sending).map((s) => s.drain()));
    const after = this.outcomes();
    return {
      ...dispatched,
      delivered: after.delivered - before.delivered,
      retrying: after.retrying - before.retrying,
      dead: after.dead - before.dead,
    };
  }

  async roles(): Promise<Counts> {
    return { rolesRepaired: await repairMappedRoles(this.ctx.sql) };
  }

  /**
   * Re-checks verified domains' DNS records. Not part of runOnce: it asks DNS servers, which a
   * one-off run (the CLI, tests) should not depend on; it runs daily on one instance.
   */
  async domains(): Promise<LaneResult> {
    const { checked, lost, unavailable } = await recheckVerifiedDomains(
      this.ctx.sql,
      createTxtLookup(this.ctx.config.dnsServers),
    );
    return { domainsChecked: checked, domainsLost: lost, domainsUnavailable: unavailable };
  }

  /**
   * Refreshes the SAML connections whose metadata URL is due. Not part of runOnce either: it
   * fetches from IdPs; it runs on its schedule on one instance per tick.
   */
  async samlMetadata(now = new Date()): Promise<LaneResult> {
    return refreshDueMetadata(this.ctx.sql, this.ctx.config.samlMetadata, now);
  }

  async housekeeping(): Promise<Counts> {
    const outbox = await pruneOutbox(this.ctx.sql);
    return {
      eventsPruned: outbox.events,
      deliveriesPruned: outbox.deliveries,
      deliveryAttemptsPruned: await pruneDeliveryAttempts(this.ctx.sql),
      jobRunsPruned: await pruneJobRuns(this.ctx.sql),
      scimRequestsPruned: await pruneScimRequests(this.ctx.sql),
      ssoAttemptsPruned: await pruneSsoAttempts(this.ctx.sql),
      invitationImportsPruned: await pruneInvitationImports(this.ctx.sql),
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
    const { eventsSchedule, invitesSchedule, rolesSchedule, metadataSchedule, maintenanceSchedule } =
      this.ctx.config.reconciler;
    // Claims in flight are awaited by stop(), so a tick claimed while stopping still runs.
    const claims = postgresRunCoordinator(this.ctx.sql);
    const coordinator: RunCoordinator = {
      shouldRun: (key, ttl) => {
        const claim = Promise.resolve(claims.shouldRun(key, ttl));
        this.claims.add(claim);
        void claim.finally(() => this.claims.delete(claim)).catch(() => {});
        return claim;
      },
    };
    const { dispatch, email, webhook, invitations, roles, housekeeping, domains, metadata, maintenance } = this.lanes;
    // Every instance polls events and deliveries: the work is shared out row by row. The callbacks
    // only wake lanes and return at once, so node-cron never sees a tick still running.
    this.schedule('events', eventsSchedule, () => [dispatch, email, webhook].forEach((l) => l.wake()));
    this.schedule('invitations', invitesSchedule, () => invitations.tick(), coordinator);
    this.schedule('roles', rolesSchedule, () => roles.tick(), coordinator);
    this.schedule('housekeeping', '17 3 * * *', () => housekeeping.tick(), coordinator);
    this.schedule('domains', '43 4 * * *', () => domains.tick(), coordinator);
    this.schedule('metadata', metadataSchedule, () => metadata.tick(), coordinator);
    this.schedule('maintenance', maintenanceSchedule, () => maintenance.tick(), coordinator);
    this.listening = this.listen();
    [dispatch, email, webhook].forEach((l) => l.wake());
  }

  /** Resolves once this instance listens for new events (or knows it polls). */
  ready(): Promise<void> {
    return this.listening;
  }

  /** Stops the schedules and the listener, and waits for running jobs and sends in flight. */
  async stop(): Promise<void> {
    await Promise.all(this.tasks.map((t) => Promise.resolve(t.stop())));
    this.tasks = [];
    await Promise.allSettled([...this.claims]);
    await new Promise((resolve) => setImmediate(resolve)); // node-cron calls back right after a claim
    await this.listening;
    await Promise.all(Object.values(this.lanes).map((l) => l.stop()));
    await Promise.all(Object.values(this.sending).map((s) => s.settle()));
  }

  /**
   * LISTENs on a dedicated connection; each notification (and each reconnect, which may have
   * missed some) wakes dispatch. The embedded database serves one session through its socket and
   * does not pass notifications on, so there dispatch runs on its schedule alone.
   */
  private async listen(): Promise<void> {
    // The process's one listening session (a direct connection, also behind PgBouncer).
    const { notifications } = this.ctx.database;
    if (!notifications) return;
    // Once stopped, the lanes ignore wake-ups, so the listener needs no removal.
    const wake = () => this.lanes.dispatch.wake();
    try {
      await notifications.listen(OUTBOX_CHANNEL, wake, wake);
    } catch (error) {
      this.ctx.log.warn({ err: error }, 'cannot LISTEN for new events; dispatch runs on its schedule only');
    }
  }

  private outcomes(): Record<Outcome, number> {
    const sum: Record<Outcome, number> = { delivered: 0, retrying: 0, dead: 0 };
    for (const s of Object.values(this.sending)) for (const k of Object.keys(sum) as Outcome[]) sum[k] += s.outcomes[k];
    return sum;
  }

  private schedule(name: string, expression: string, wake: () => void, coordinator?: RunCoordinator): void {
    this.tasks.push(
      cron.schedule(expression, wake, {
        name: `orgsync:${name}`,
        ...(coordinator ? { distributed: true, runCoordinator: coordinator } : {}),
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
    invitationImportsPruned: 0,
    eventsPruned: 0,
    deliveriesPruned: 0,
    deliveryAttemptsPruned: 0,
    rolesRepaired: 0,
  };
}
