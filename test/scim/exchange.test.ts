import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import express, { type RequestHandler } from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { jsonParser, readJsonBody } from '../../src/scim/json-body.ts';
import { scimFixture } from '../support/scim.ts';

/** An app answering what its body reader made of a request: the body, or the error's status and type. */
function echo(read: RequestHandler) {
  const app = express();
  app.post('/', read, (req, res) => res.json({ body: req.body }));
  app.use(((error, _req, res, _next) => {
    res.status(200).json({ error: { status: error.status, type: error.type } });
  }) as express.ErrorRequestHandler);
  return app;
}

const LIMIT = 64;
const parser = jsonParser(LIMIT);
const viaExpressJson = echo(parser);
const viaOwnReader = echo((req, res, next) => {
  readJsonBody(req, res, LIMIT, parser).then((body) => {
    req.body = body;
    next();
  }, next);
});

/** Sends one raw request to an app on a real socket (chunked when `chunks` has several parts). */
async function send(app: express.Express, headers: Record<string, string>, chunks: Buffer[]) {
  const server = http.createServer(app).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise<unknown>((resolve, reject) => {
      const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/', headers }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      for (const chunk of chunks) req.write(chunk);
      req.end();
    });
  } finally {
    server.close();
  }
}

const json = { 'content-type': 'application/scim+json' };
const CASES: { name: string; headers: Record<string, string>; chunks: (string | Buffer)[]; length?: boolean }[] = [
  { name: 'an object', headers: json, chunks: ['{"a":1}'] },
  { name: 'an array', headers: json, chunks: ['[1,2]'] },
  { name: 'leading whitespace', headers: json, chunks: [' \n\t{"a":1}'] },
  { name: 'a byte order mark', headers: json, chunks: ['\uFEFF{"a":1}'] },
  { name: 'an empty body', headers: json, chunks: [''] },
  { name: 'whitespace only', headers: json, chunks: ['  \n'] },
  { name: 'a string at the top', headers: json, chunks: ['"x"'] },
  { name: 'a number at the top', headers: json, chunks: ['1'] },
  { name: 'null at the top', headers: json, chunks: ['null'] },
  { name: 'malformed JSON', headers: json, chunks: ['{"a":'] },
  {
    name: 'application/json with a charset',
    headers: { 'content-type': 'application/json; charset=UTF-8' },
    chunks: ['{"a":1}'],
  },
  { name: 'a quoted charset', headers: { 'content-type': 'application/json; charset="utf-8"' }, chunks: ['{"a":1}'] },
  { name: 'another charset', headers: { 'content-type': 'application/json; charset=latin1' }, chunks: ['{"a":1}'] },
  { name: 'another media type', headers: { 'content-type': 'text/plain' }, chunks: ['{"a":1}'] },
  { name: 'no media type', headers: {}, chunks: ['{"a":1}'] },
  {
    name: 'a multibyte character split across chunks',
    headers: json,
    chunks: [Buffer.from('{"a":"é'), Buffer.from('"}')],
  },
  { name: 'declared over the limit', headers: json, chunks: [`{"a":"${'x'.repeat(LIMIT)}"}`] },
  {
    name: 'chunked over the limit',
    headers: json,
    chunks: [`{"a":"${'x'.repeat(40)}`, `${'x'.repeat(40)}"}`],
    length: false,
  },
  {
    name: 'a gzip body',
    headers: { ...json, 'content-encoding': 'gzip' },
    chunks: [zlib.gzipSync('{"a":1}')],
  },
];

describe('the own operations read a JSON body as express.json does', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const chunks = c.chunks.map((x) => (typeof x === 'string' ? Buffer.from(x) : x));
      const headers = { ...c.headers };
      if (c.length !== false) headers['content-length'] = String(Buffer.concat(chunks).length);
      else headers['transfer-encoding'] = 'chunked';
      const expected = await send(viaExpressJson, headers, chunks);
      expect(await send(viaOwnReader, headers, chunks)).toEqual(expected);
    });
  }
});

let f: Awaited<ReturnType<typeof scimFixture>>;
beforeAll(async () => {
  f = await scimFixture('exchange-org');
});
afterAll(async () => f.ctx.database.close());

describe('the SCIM exchange', () => {
  const flushRequestLog = async () => {
    for (const hook of f.ctx.beforeClose ?? []) await hook();
  };
  const logged = async (path: string) =>
    (await f.ctx.sql<{ status: number }[]>`select status from scim_requests where path = ${path}`).map((r) => r.status);

  it('an unknown SCIM endpoint gets a SCIM 404, logged once, with its request id', async () => {
    const res = await request(f.app)
      .get('/scim/v2/Nope')
      .set('authorization', `Bearer ${f.org.scimToken}`)
      .set('x-request-id', 'probe-1')
      .expect(404);
    expect(res.headers['x-request-id']).toBe('probe-1');
    expect(res.headers['content-type']).toBe('application/scim+json; charset=utf-8');
    expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '404' });
    await flushRequestLog();
    expect(await logged('/scim/v2/Nope')).toEqual([404]);
  });

  it('own operations answer as express did: type, length, location, ETag, HEAD, a trailing slash, any case', async () => {
    const created = await request(f.app)
      .post('/scim/v2/users/')
      .set('authorization', `Bearer ${f.org.scimToken}`)
      .set('content-type', 'application/scim+json')
      .send(JSON.stringify({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'case@exchange.test' }))
      .expect(201);
    expect(created.headers['content-type']).toBe('application/scim+json; charset=utf-8');
    expect(Number(created.headers['content-length'])).toBe(Buffer.byteLength(created.text));
    expect(created.headers.location).toBe(created.body.meta.location);
    expect(created.headers.etag).toBe(`W/"${created.body.meta.version.replace(/\D/g, '')}"`);
    expect(created.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);

    const head = await request(f.app)
      .head('/scim/v2/Users?filter=userName%20eq%20%22case@exchange.test%22')
      .set('authorization', `Bearer ${f.org.scimToken}`)
      .expect(200);
    expect(head.text).toBeUndefined();
    expect(Number(head.headers['content-length'])).toBeGreaterThan(0);

    const patched = await request(f.app)
      .patch(`/scim/v2/Users/${created.body.id}`)
      .set('authorization', `Bearer ${f.org.scimToken}`)
      .set('content-type', 'application/json')
      .send({
        schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
        Operations: [{ op: 'replace', value: { active: false } }],
      })
      .expect(200);
    expect(patched.body.active).toBe(false);
    await request(f.app)
      .patch('/scim/v2/Users/%E0%A4%A')
      .set('authorization', `Bearer ${f.org.scimToken}`)
      .send({ Operations: [] })
      .expect(400);
  });

  it('a failure after authentication (here, of the rate limit) is a SCIM error, not a stalled request', async () => {
    const limited = await scimFixture('exchange-limited', { SCIM_RATE_LIMIT: '1000' });
    try {
      await limited.client.get('/Users').expect(200);
      await limited.ctx.sql`alter table scim_rate_buckets rename to scim_rate_buckets_gone`;
      const res = await limited.client.get('/Users').expect(500);
      expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '500' });
    } finally {
      await limited.ctx.sql`alter table if exists scim_rate_buckets_gone rename to scim_rate_buckets`;
      await limited.ctx.database.close();
    }
  });
});
