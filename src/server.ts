import http from 'node:http';
import type express from 'express';
import type { AppContext } from './context.ts';
import { createApp } from './app.ts';

export interface RunningServer {
  server: http.Server;
  url: string;
  /** Stops accepting, lets in-flight requests finish (up to the shutdown timeout), then closes the database. */
  shutdown(reason?: string, beforeDatabaseClose?: () => Promise<void> | undefined): Promise<void>;
}

export async function startServer(ctx: AppContext, app = createApp(ctx)): Promise<RunningServer> {
  const server = http.createServer(expressMessages(app), app);
  // Node's own request timeout bounds slow-loris bodies; headers must arrive within 20 s.
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(ctx.config.port, ctx.config.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : ctx.config.port;
  const url = `http://${ctx.config.host}:${port}`;

  let stopping: Promise<void> | undefined;
  const shutdown = (reason = 'shutdown', beforeDatabaseClose?: () => Promise<void> | undefined) =>
    (stopping ??= (async () => {
      ctx.log.info({ reason }, 'shutting down: no new connections, finishing in-flight requests');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Keep-alive connections become idle as their last response goes out; close them then.
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      server.closeIdleConnections();
      const timer = setTimeout(() => {
        ctx.log.warn('shutdown timeout reached; closing remaining connections');
        server.closeAllConnections();
      }, ctx.config.shutdownTimeoutMs);
      await closed;
      clearTimeout(timer);
      clearInterval(sweep);
      await beforeDatabaseClose?.();
      for (const hook of ctx.beforeClose ?? []) await hook();
      await ctx.database.close();
      ctx.log.info('shutdown complete');
    })());

  return { server, url, shutdown };
}

/**
 * Node's requests and responses made with the app's own prototypes (express's request and
 * response) from the start, so express's init finds them in place instead of setting them on
 * every request. V8 handles an object whose prototype was changed badly: with the prototypes set
 * per request, about a fifth of everything a request allocated outlived the young generation and
 * was promoted, against a few percent without (bench/RESULTS.md, 2026-12-03 20:20).
 */
function expressMessages(app: express.Express): http.ServerOptions {
  function Request(this: http.IncomingMessage, socket: unknown) {
    Reflect.apply(http.IncomingMessage, this, [socket]);
  }
  Request.prototype = app.request;
  function Response(this: http.ServerResponse, req: unknown, options: unknown) {
    Reflect.apply(http.ServerResponse, this, [req, options]);
  }
  Response.prototype = app.response;
  return {
    IncomingMessage: Request as unknown as typeof http.IncomingMessage,
    ServerResponse: Response as unknown as typeof http.ServerResponse,
  };
}
