import type { Logger } from '../log.ts';
import { reconcilerJobDuration, reconcilerJobOverlaps } from '../metrics.ts';

/** What one run of a lane did; `more` asks for another run at once (its budget ran out). */
export type LaneResult = { more?: boolean } & Record<string, number | boolean | undefined>;

export interface LaneStats {
  runs: number;
  /** Wake-ups that arrived during a run and were folded into one more run. */
  coalesced: number;
  /** Scheduled ticks skipped because the previous run was still going. */
  skipped: number;
  failed: number;
}

/**
 * Runs one job single-flight. `wake()` during a run does not start a second one: it asks for one
 * more run after the current one (a burst of 5,000 notifications makes at most two runs), and a
 * run whose budget ran out asks for the next itself. `tick()` is for schedules claimed per tick:
 * while a run is going the tick is skipped and counted, never reported as an overlap.
 */
export class Lane {
  readonly stats: LaneStats = { runs: 0, coalesced: 0, skipped: 0, failed: 0 };
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  /**
   * `settleMs`: a wake-up that arrives during a run starts the next run no sooner than this long
   * after the run began, so that under a steady stream of wake-ups (one per committed change)
   * each run takes a batch rather than the one or two changes committed meanwhile.
   */
  constructor(
    readonly name: string,
    private readonly job: () => Promise<LaneResult>,
    private readonly log: Logger,
    private readonly settleMs = 0,
  ) {}

  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      this.stats.coalesced += 1;
      return;
    }
    this.running = this.loop().finally(() => (this.running = null));
  }

  tick(): void {
    if (this.running) {
      this.stats.skipped += 1;
      reconcilerJobOverlaps.inc({ job: this.name });
    } else this.wake();
  }

  /** Resolves when no run is going. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.idle();
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      this.stats.runs += 1;
      const started = performance.now();
      let more: boolean | undefined;
      try {
        const { more: budgetSpent, ...counts } = await this.job();
        more = budgetSpent;
        if (more) this.again = true;
        reconcilerJobDuration.observe({ job: this.name, result: 'ok' }, (performance.now() - started) / 1000);
        const changed = Object.values(counts).some((n) => n);
        this.log[changed ? 'info' : 'debug'](
          { job: this.name, ...counts, durationMs: Math.round(performance.now() - started) },
          'reconciler job',
        );
      } catch (error) {
        // No immediate retry: the next wake-up or tick tries again.
        this.stats.failed += 1;
        reconcilerJobDuration.observe({ job: this.name, result: 'failed' }, (performance.now() - started) / 1000);
        this.log.error({ job: this.name, err: error }, 'reconciler job failed');
      }
      // Let requests and the other lanes in between runs; wake-ups settle into one batch.
      const settle = more ? 0 : started + this.settleMs - performance.now();
      if (this.again)
        await new Promise((resolve) => (settle > 0 ? setTimeout(resolve, settle) : setImmediate(resolve)));
    } while (this.again && !this.stopped);
  }
}
