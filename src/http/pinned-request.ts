import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { ResolvedAddress } from '../core/webhook-url.ts';

/**
 * Outgoing requests to an address already checked against server-side request forgery
 * (core/webhook-url.ts): the host name stays in the URL, so Host and TLS SNI and certificate
 * checks use it, but the socket's lookup answers `target` instead of asking DNS again (a
 * rebinding name cannot answer differently the second time). A fresh connection each time (no
 * pooled socket of another address); redirects are never followed here.
 */

function pinnedRequest(url: URL, target: ResolvedAddress, options: http.RequestOptions): http.ClientRequest {
  const lookup: LookupFunction = (_hostname, lookupOptions, callback) => {
    if (lookupOptions.all) callback(null, [target]);
    else callback(null, target.address, target.family);
  };
  const send = url.protocol === 'https:' ? https.request : http.request;
  return send(url, { ...options, agent: false, lookup });
}

/** POSTs `body` to `url` over a connection to exactly `target`; answers the HTTP status. */
export function postToAddress(
  url: URL,
  target: ResolvedAddress,
  request: { headers: Record<string, string>; body: string; timeoutMs: number },
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = pinnedRequest(url, target, {
      method: 'POST',
      headers: { ...request.headers, 'content-length': String(Buffer.byteLength(request.body)) },
      signal: AbortSignal.timeout(request.timeoutMs),
    });
    // The status is the answer; the body is not read (the connection is not reused).
    req.once('response', (res) => {
      resolve(res.statusCode ?? 0);
      res.destroy();
    });
    req.once('error', reject);
    req.end(request.body);
  });
}

export interface FetchedResponse {
  status: number;
  /** The Location header of a redirect (not followed). */
  location?: string;
  /** The body of a 2xx answer (other answers' bodies are not read). */
  body: Buffer;
}

/** Why a GET was given up: too slow, or a body larger than allowed. */
export class FetchLimitError extends Error {}

/**
 * GETs `url` over a connection to exactly `target`. `timeoutMs` bounds the whole exchange, body
 * included (a server that trickles bytes is cut off too); a body beyond `maxBytes` (announced or
 * received) ends the request with FetchLimitError.
 */
export function getFromAddress(
  url: URL,
  target: ResolvedAddress,
  request: { headers: Record<string, string>; timeoutMs: number; maxBytes: number },
): Promise<FetchedResponse> {
  return new Promise((resolve, reject) => {
    const req = pinnedRequest(url, target, { method: 'GET', headers: request.headers });
    const fail = (error: Error) => {
      clearTimeout(timer);
      req.destroy();
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new FetchLimitError(`no complete answer within ${request.timeoutMs} ms`)),
      request.timeoutMs,
    );
    req.once('error', fail);
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status >= 300) {
        clearTimeout(timer);
        res.destroy();
        resolve({ status, location: res.headers.location, body: Buffer.alloc(0) });
        return;
      }
      if (Number(res.headers['content-length'] ?? 0) > request.maxBytes) {
        fail(new FetchLimitError(`the answer is larger than ${request.maxBytes} bytes`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > request.maxBytes) fail(new FetchLimitError(`the answer is larger than ${request.maxBytes} bytes`));
        else chunks.push(chunk);
      });
      res.once('error', fail);
      res.once('end', () => {
        clearTimeout(timer);
        resolve({ status, body: Buffer.concat(chunks) });
      });
    });
    req.end();
  });
}
