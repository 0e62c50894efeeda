/** How a failed attempt (an event's dispatch, or a delivery's send) is retried: shared by outbox.ts and deliver.ts. */
export interface RetryPolicy {
  maxAttempts: number;
  /** Delay after the first failure; doubles each time, up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Exponential backoff with ±20 % jitter, so many failing deliveries do not retry in lockstep. */
function backoffMs(attempts: number, policy: RetryPolicy): number {
  const delay = Math.min(policy.baseDelayMs * 2 ** (attempts - 1), policy.maxDelayMs);
  return Math.round(delay * (0.8 + Math.random() * 0.4));
}

/** What a failed attempt (a delivery's, or an event's dispatch) leads to under the retry policy. */
export function afterFailure(
  previousAttempts: number,
  error: unknown,
  policy: RetryPolicy,
): { attempts: number; final: boolean; delayMs: number; message: string } {
  const attempts = previousAttempts + 1;
  const final = attempts >= policy.maxAttempts;
  return {
    attempts,
    final,
    delayMs: final ? 0 : backoffMs(attempts, policy),
    message: String((error as Error)?.message ?? error).slice(0, 1000),
  };
}
