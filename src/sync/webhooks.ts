import crypto from 'node:crypto';
import { parseWebhookUrl, webhookTarget, type Resolve } from '../core/webhook-url.ts';
import { postToAddress } from '../http/pinned-request.ts';

/** Header names a receiver checks: `Orgsync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`. */
export const SIGNATURE_HEADER = 'orgsync-signature';
export const EVENT_ID_HEADER = 'orgsync-event-id';

export function signWebhook(secret: string, timestamp: number, body: string): string {
  const mac = crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/** Checks a signature header (for receivers and tests); refuses stale timestamps. */
export function verifyWebhookSignature(secret: string, header: string, body: string, toleranceSeconds = 300): boolean {
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=', 2) as [string, string]));
  const timestamp = Number(parts.t);
  if (!Number.isFinite(timestamp) || Math.abs(Date.now() / 1000 - timestamp) > toleranceSeconds) return false;
  const expected = Buffer.from(signWebhook(secret, timestamp, body));
  const given = Buffer.from(header);
  return expected.length === given.length && crypto.timingSafeEqual(expected, given);
}

/** A webhook answered with a status that is not success; `responseStatus` is kept with the attempt. */
export class WebhookAnswerError extends Error {
  readonly responseStatus: number;
  constructor(responseStatus: number) {
    super(
      responseStatus >= 300 && responseStatus < 400
        ? `webhook answered HTTP ${responseStatus} (redirects are not followed)`
        : `webhook answered HTTP ${responseStatus}`,
    );
    this.responseStatus = responseStatus;
  }
}

/**
 * POSTs one signed event and answers the HTTP status; throws on a refused or unresolvable target, a network error, a timeout
 * or a non-2xx answer (a redirect too: it is not followed). The URL is checked again here (DNS may
 * have changed since it was saved) and the request goes to the address that was checked.
 */
export async function postWebhook(
  url: string,
  secret: string,
  eventId: string,
  body: string,
  options: { timeoutMs: number; allowPrivate: boolean; resolve?: Resolve },
): Promise<number> {
  const parsed = parseWebhookUrl(url);
  const target = await webhookTarget(parsed, { allowPrivateNetworks: options.allowPrivate, resolve: options.resolve });
  const timestamp = Math.floor(Date.now() / 1000);
  const status = await postToAddress(parsed, target, {
    headers: {
      'content-type': 'application/json',
      'user-agent': 'orgsync-webhooks/1',
      [EVENT_ID_HEADER]: eventId,
      [SIGNATURE_HEADER]: signWebhook(secret, timestamp, body),
    },
    body,
    timeoutMs: options.timeoutMs,
  });
  if (status < 200 || status >= 300) throw new WebhookAnswerError(status);
  return status;
}
