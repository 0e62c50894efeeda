import type { Request, Response } from 'express';
import SCIMMY from 'scimmy';
import type { AppContext } from '../context.ts';
import { errorBody, scimError, toScimError, type ScimError } from './errors.ts';

/**
 * A SCIM answer as application/scim+json, or 204 when there is none. A 201 carries the new
 * resource's location in the Location header too.
 */
export function sendScim(res: Response, status: number, body: unknown): void {
  if (body === undefined) {
    res.statusCode = 204;
    res.setHeader('content-type', 'application/scim+json');
    res.end();
    return;
  }
  if (status === 201) res.location(String((body as { meta?: { location?: string } }).meta?.location ?? ''));
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('content-type', 'application/scim+json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.end(text);
}

/**
 * A failed SCIM request's answer in the SCIM error schema: a handler's error, or one of reading
 * the request (its body, its path).
 */
export function sendScimError(app: AppContext, req: Request, res: Response, error: unknown): void {
  // scimmy-routers answers only the statuses RFC 7644 §3.12 lists: for another (a 502 or 503 of
  // its handlers) its error handler throws instead, and the failure `guard` kept is answered here.
  const scim = req.scim?.failure ?? requestError(error, req, app);
  res
    .status(Number(scim.status))
    .type('application/scim+json')
    .send(JSON.stringify(errorBody(scim)));
}

function requestError(error: unknown, req: Request, app: AppContext): ScimError {
  const { type: bodyErrorType, status } = (error ?? {}) as { type?: unknown; status?: unknown };
  if (bodyErrorType === 'entity.parse.failed')
    return scimError(400, 'invalidSyntax', 'the request body is not valid JSON');
  if (bodyErrorType === 'entity.too.large') return scimError(413, null, tooLargeMessage(req, app));
  // Other errors express and body-parser raise carry a 4xx status (say, a path that does not
  // percent-decode, or an unsupported charset).
  if (typeof status === 'number' && status >= 400 && status < 500 && !(error instanceof SCIMMY.Types.Error))
    return scimError(status, status === 400 ? 'invalidValue' : null, String((error as Error).message));
  return toScimError(error, (e) => app.log.error({ err: e }, 'SCIM request failed'));
}

/** RFC 7644 §3.7.4: a /Bulk request over maxPayloadSize is told the limit it exceeded. */
function tooLargeMessage(req: Request, app: AppContext): string {
  if (req.path !== '/Bulk') return 'the request body is too large';
  return `the bulk request is larger than maxPayloadSize (${app.config.scimBulk.maxPayloadSize} bytes)`;
}
