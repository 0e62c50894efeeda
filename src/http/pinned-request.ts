import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { ResolvedAddress } from '../core/webhook-url.ts';

/**
 * Outgoing requests to an address already checked against server-side request forgery
 * (core/webhook-url.ts): the host name stays in the URL, so Host and TLS SNI and certificate
 * checks use it, but the socket's lookup answers `target` instead of asking DNS again (a
 * rebinding name cannot answer differently the second time). Redirects are never followed here.
 */
function pinnedRequest(
  url: URL,
  target: ResolvedAddress,
  options: http.RequestOptions,
  agent: http.Agent | false = false,
): http.ClientRequest {
  const lookup: LookupFunction = (_hostname, lookupOptions, callback) => {
    if (lookupOptions.all) callback(null, [target]);
    else callback(null, target.address, target.family);
  };
  const send = url.protocol === 'https:' ? https.request : http.request;
  return send(url, { ...options, agent, lookup });
}

/** Idle kept-alive connections close after this, before most servers' own keep-alive timeout (5 s in Node). */
const IDLE_CONNECTION_MS = 4_000;
/** Origins and addresses with connections kept; the least recently used beyond it are closed. */
const MAX_KEPT_ORIGINS = 256;
/** An answer's body is drained up to this, so its connection can carry the next post; a longer one closes it. */
const MAX_DRAINED_BYTES = 64 * 1024;
const keptAlive = new Map<string, http.Agent>();

/**
 * The connections kept alive to one origin at one checked address: a post over a kept
 * connection skips the TCP (and TLS) handshake, and a socket only ever carries requests to the
 * address it was opened to, each checked again before it is sent.
 */
function keptAliveAgent(url: URL, target: ResolvedAddress): http.Agent {
  const key = `${url.protocol}//${url.host} ${target.address}`;
  let agent = keptAlive.get(key);
  if (agent) keptAlive.delete(key);
  else {
    const options = { keepAlive: true, timeout: IDLE_CONNECTION_MS, scheduling: 'lifo' as const };
    agent = url.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
  }
  keptAlive.set(key, agent);
  for (const [oldest, stale] of keptAlive) {
    if (keptAlive.size <= MAX_KEPT_ORIGINS) break;
    stale.destroy();
    keptAlive.delete(oldest);
  }
  return agent;
}

/** POSTs `body` to `url` over a connection to exactly `target`; answers the HTTP status. */
export function postToAddress(
  url: URL,
  target: ResolvedAddress,
  request: { headers: Record<string, string>; body: string; timeoutMs: number },
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = pinnedRequest(
      url,
      target,
      {
        method: 'POST',
        headers: { ...request.headers, 'content-length': String(Buffer.byteLength(request.body)) },
        signal: AbortSignal.timeout(request.timeoutMs),
      },
      keptAliveAgent(url, target),
    );
    // The status is the answer; the body is drained so the connection can be kept, up to a limit.
    req.once('response', (res) => {
      resolve(res.statusCode ?? 0);
      let drained = 0;
      res.on('data', (chunk: Buffer) => {
        drained += chunk.length;
        if (drained > MAX_DRAINED_BYTES) res.destroy();
      });
      res.once('error', () => {});
    });
    // Every error, also one of the socket while the body is drained (after the answer: no effect).
    req.on('error', reject);
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
