import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { ResolvedAddress } from '../core/webhook-url.ts';

/**
 * POSTs to `url` over a connection to exactly `target` (the address already checked): the host
 * name stays in the URL, so Host and TLS SNI and certificate checks use it, but the socket's
 * lookup answers `target` instead of asking DNS again. A fresh connection each time (no pooled
 * socket of another address); redirects are not followed. Answers the HTTP status.
 */
export function postToAddress(
  url: URL,
  target: ResolvedAddress,
  request: { headers: Record<string, string>; body: string; timeoutMs: number },
): Promise<number> {
  const lookup: LookupFunction = (_hostname, options, callback) => {
    if (options.all) callback(null, [target]);
    else callback(null, target.address, target.family);
  };
  const send = url.protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = send(url, {
      method: 'POST',
      headers: { ...request.headers, 'content-length': String(Buffer.byteLength(request.body)) },
      agent: false,
      lookup,
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
