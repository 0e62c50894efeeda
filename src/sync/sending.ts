import { deliveryOutcomes } from '../metrics.ts';
import type { Logger } from '../log.ts';
import type { Sql } from '../storage/database.ts';
import {
  claimDeliveries,
  sendClaimed,
  type BreakerPolicy,
  type Claim,
  type Delivery,
  type Outcome,
  type Sender,
} from './deliver.ts';
import type { RetryPolicy } from './retry.ts';

export interface SendingOptions {
  kind: Delivery['kind'];
  sender: Sender;
  policy: RetryPolicy;
  /** Sends in flight at once in this instance. */
  concurrency: number;
  /** Sends in flight at once per target (webhook endpoint) in this instance. */
  perTarget?: number;
  breaker?: BreakerPolicy;
  /** This instance, as recorded on the deliveries it claims. */
  claimedBy: string;
  log: Logger;
  /** Called whenever a send finishes: a slot is free, so claiming may go on. */
  onSlotFree: () => void;
}

/** A lease outlasts the longest send by this much (clock skew, a slow outcome write). */
const LEASE_MARGIN_MS = 30_000;

/**
 * One kind of delivery (emails, or webhooks) sent by this instance: `fill` claims due deliveries
 * into the free send slots and starts them without waiting for them, so a hanging receiver holds
 * only its own slots. Sends run outside any transaction (see `sendClaimed`).
 */
export class Sending {
  readonly outcomes: Record<Outcome | 'leaseLost', number> = { delivered: 0, retrying: 0, dead: 0, leaseLost: 0 };
  private readonly sends = new Set<Promise<void>>();
  private readonly perTarget = new Map<string, number>();
  /** Sends finished so far. */
  private finished = 0;
  private claiming: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly sql: Sql,
    private readonly options: SendingOptions,
  ) {}

  get inFlight(): number {
    return this.sends.size;
  }

  /**
   * Claims into free slots until nothing more is claimable now, the slots are full (a finishing
   * send wakes the lane again) or `budget` rows were claimed. One claim at a time per instance,
   * so the slot counts it passes are exact.
   */
  fill(budget: { rows: number; deadline: number }): Promise<{ claimed: number; more: boolean }> {
    const run = this.claiming.then(async () => {
      let claimed = 0;
      while (claimed < budget.rows && performance.now() < budget.deadline) {
        const wanted = Math.min(this.options.concurrency - this.sends.size, budget.rows - claimed);
        if (wanted <= 0) return { claimed, more: false };
        const batch = await this.claim(wanted);
        for (const claim of batch) this.start(claim);
        claimed += batch.length;
        // A claim takes all it may: fewer than asked means nothing more is claimable now (the due
        // deliveries' targets are full). A finishing send wakes the lane again.
        if (batch.length < wanted) return { claimed, more: false };
      }
      return { claimed, more: true };
    });
    this.claiming = run.catch(() => {});
    return run;
  }

  /** Claims and sends until nothing is due and nothing is in flight (the CLI's `reconcile --once`, tests). */
  async drain(): Promise<void> {
    for (;;) {
      // A send that finishes while a claim runs frees its target's slot after the claim counted it
      // full: that claim's "nothing" proves nothing, so claim again.
      const finishedBefore = this.finished;
      const { claimed } = await this.fill({ rows: Infinity, deadline: Infinity });
      if (claimed === 0 && this.sends.size === 0 && this.finished === finishedBefore) return;
      if (this.sends.size > 0) await Promise.race(this.sends);
    }
  }

  /** Waits for the sends in flight. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.sends]);
  }

  private claim(limit: number): Promise<Claim[]> {
    const { kind, perTarget, breaker, claimedBy, sender } = this.options;
    return claimDeliveries(this.sql, {
      kind,
      limit,
      claimedBy,
      leaseMs: sender.timeoutMs + LEASE_MARGIN_MS,
      ...(perTarget
        ? { perTarget, targetSlots: new Map([...this.perTarget].map(([t, n]) => [t, perTarget - n])) }
        : {}),
      breaker,
    });
  }

  private start(claim: Claim): void {
    const { target } = claim.delivery;
    this.perTarget.set(target, (this.perTarget.get(target) ?? 0) + 1);
    const send = sendClaimed(this.sql, claim, this.options.sender, this.options.policy, this.options.breaker)
      .then((outcome) => {
        this.outcomes[outcome ?? 'leaseLost'] += 1;
        if (outcome) deliveryOutcomes.inc({ outcome });
        if (!outcome)
          this.options.log.warn(
            { deliveryId: claim.delivery.id, organizationId: claim.delivery.organizationId },
            'delivery lease ran out before its outcome was recorded; it may be sent again',
          );
      })
      .catch((error: unknown) =>
        this.options.log.error({ err: error, deliveryId: claim.delivery.id }, 'recording a delivery outcome failed'),
      )
      .finally(() => {
        const left = (this.perTarget.get(target) ?? 1) - 1;
        if (left > 0) this.perTarget.set(target, left);
        else this.perTarget.delete(target);
        this.sends.delete(send);
        this.finished += 1;
        this.options.onSlotFree();
      });
    this.sends.add(send);
  }
}
