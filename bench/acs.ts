import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { systemActor } from '../src/core/actor.ts';
import { createOrganization } from '../src/core/organizations.ts';
import { createConnection } from '../src/saml/connections.ts';
import { decodeSamlResponse } from '../src/saml/validate-response.ts';
import { parseUntrustedXml } from '../src/saml/xml.ts';
import { verifyXmlSignature } from '../src/saml/xml-signature.ts';
import {
  IDP_ENTITY_ID,
  IDP_SSO_URL,
  encode,
  makeIdpKeys,
  responseXml,
  signAssertion,
} from '../test/saml/support/idp.ts';
import {
  benchDatabase,
  CONCURRENCY,
  eventLoopCpuMs,
  processCpuMs,
  processRssMb,
  root,
  startServer,
  stopServer,
} from './support.ts';

/**
 * The SAML ACS under load, against a real orgsync process: valid signed responses (made
 * beforehand by the test IdP, each with its own assertion id) posted at CONCURRENCY, then a
 * burst of unsigned junk posted all at once, with the server's resident memory sampled meanwhile.
 */
const LOGINS = Number(process.env.BENCH_ACS_LOGINS ?? 1_000);
const JUNK = Number(process.env.BENCH_ACS_JUNK ?? 100);
const JUNK_ROUNDS = Number(process.env.BENCH_ACS_JUNK_ROUNDS ?? 1);
const WARM_UP = Number(process.env.BENCH_ACS_WARMUP ?? CONCURRENCY);

export async function benchAcs(): Promise<string[]> {
  const db = await benchDatabase();
  const { child, port } = await startServer(db.url);
  try {
    const slug = 'bench';
    await createOrganization(db.sql, { name: 'Bench', slug, ownerEmail: 'owner@bench.test' }, systemActor('cli'));
    const [org] = await db.sql<{ id: string }[]>`select id from organizations where slug = ${slug}`;
    const idp = makeIdpKeys('bench-idp');
    await createConnection(
      db.sql,
      org!.id,
      { name: 'Bench IdP', idpEntityId: IDP_ENTITY_ID, ssoUrl: IDP_SSO_URL, certificates: [idp.certificate] },
      systemActor('cli'),
    );
    const publicUrl = `http://localhost:${port}`;
    const site = { acsUrl: `${publicUrl}/saml/${slug}/acs`, audience: `${publicUrl}/saml/${slug}/metadata` };
    const form = (xml: string) => `SAMLResponse=${encodeURIComponent(encode(xml))}`;
    const signed = Array.from({ length: LOGINS }, () =>
      form(signAssertion(responseXml({ ...site, nameId: 'owner@bench.test' }), idp)),
    );
    const junk = Array.from({ length: JUNK }, () => form(responseXml({ ...site, nameId: 'owner@bench.test' })));
    const post = acsClient(port, `/saml/${slug}/acs`);
    // Warm-up at full concurrency: the pool opens its connections (a backend each, every statement
    // described once per connection) before the measured logins. BENCH_ACS_WARMUP raises it (say
    // to 400) to measure a server whose hot code the JIT has also compiled.
    const warmUp = Array.from({ length: WARM_UP }, () =>
      form(signAssertion(responseXml({ ...site, nameId: 'owner@bench.test' }), idp)),
    );
    await inFlight(CONCURRENCY, warmUp, (body) => post(body, 303));

    const cpuBefore = processCpuMs(child.pid!);
    const loopBefore = eventLoopCpuMs(child.pid!);
    const logins = await inFlight(CONCURRENCY, signed, (body) => post(body, 303));
    if (process.env.BENCH_ACS_DUMP) writeFileSync(process.env.BENCH_ACS_DUMP, JSON.stringify(logins.each));
    const cpuPerLogin = (processCpuMs(child.pid!) - cpuBefore) / LOGINS;
    const loopPerLogin = (eventLoopCpuMs(child.pid!) - loopBefore) / LOGINS;

    const rows = [
      `| valid signed response, ${LOGINS} at ${CONCURRENCY} in flight | ${Math.round(logins.perSecond)} logins/s | p50 ${logins.p50.toFixed(1)} ms, p99 ${logins.p99.toFixed(1)} ms | ${cpuPerLogin.toFixed(2)} ms CPU per login (event loop ${loopPerLogin.toFixed(2)} ms) |`,
      signatureCheckRow(signed[0]!, idp.certificate),
    ];
    // The burst again and again (BENCH_ACS_JUNK_ROUNDS): the first meets a refusal path the JIT
    // has not compiled yet (the logins never refuse), the later ones a warm one.
    rows.push(...(await junkBursts('orgsync', child.pid!, post, junk)));
    // BENCH_ACS_FLOOR=1: the same bursts against servers that only read and parse the message
    // (bench/acs-floor-server.ts), for what the machine allows at all.
    if (process.env.BENCH_ACS_FLOOR === '1') {
      for (const kind of ['bare', 'express']) rows.push(...(await floorBursts(kind, slug, junk)));
    }
    return rows;
  } finally {
    await stopServer(child);
    await db.drop();
  }
}

/**
 * JUNK_ROUNDS bursts of the junk posted all at once, a row each, with the server's event loop
 * time per post and its resident memory sampled meanwhile; with several rounds, a last row with
 * the median p99 of the rounds after the first (a warm refusal path).
 */
async function junkBursts(
  server: string,
  pid: number,
  post: (body: string, expected: number) => Promise<void>,
  junk: string[],
): Promise<string[]> {
  const rows: string[] = [];
  const warmP99s: number[] = [];
  for (let round = 1; round <= JUNK_ROUNDS; round++) {
    const rssBefore = processRssMb(pid);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, processRssMb(pid))), 5);
    const junkLoopBefore = eventLoopCpuMs(pid);
    const refusals = await inFlight(JUNK, junk, (body) => post(body, 403));
    const loopPerJunk = (eventLoopCpuMs(pid) - junkLoopBefore) / JUNK;
    clearInterval(sampler);
    if (round > 1) warmP99s.push(refusals.p99);
    const which = JUNK_ROUNDS > 1 ? ` (round ${round})` : '';
    rows.push(
      `| ${server}: unsigned junk, ${JUNK} at once${which} | refused in p50 ${refusals.p50.toFixed(1)} ms, p99 ${refusals.p99.toFixed(1)} ms | | event loop ${loopPerJunk.toFixed(2)} ms per post; server RSS ${Math.round(rssBefore)} → peak ${Math.round(rssPeak)} MB (+${Math.round(rssPeak - rssBefore)}) |`,
    );
  }
  if (warmP99s.length > 1) {
    warmP99s.sort((a, b) => a - b);
    const median = warmP99s[Math.floor(warmP99s.length / 2)]!;
    rows.push(`| ${server}: rounds 2–${JUNK_ROUNDS} | median p99 ${median.toFixed(1)} ms | | |`);
  }
  return rows;
}

/** junkBursts against a floor server of bench/acs-floor-server.ts, started for them. */
async function floorBursts(kind: string, slug: string, junk: string[]): Promise<string[]> {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/acs-floor-server.ts', kind, String(port)], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise((resolve) => child.stdout.once('data', resolve));
    return await junkBursts(`floor (${kind})`, child.pid!, acsClient(port, `/saml/${slug}/acs`), junk);
  } finally {
    await stopServer(child);
  }
}

/**
 * What the verifier thread does for one sign-in (signature-worker.ts: parse the message, verify
 * its signature, answer the signed assertion), timed here in one thread with nothing else to do:
 * the median of 8 rounds of 400.
 */
function signatureCheckRow(form: string, certificate: string): string {
  const xml = decodeSamlResponse(new URLSearchParams(form).get('SAMLResponse'));
  const round = (n: number) => {
    const started = performance.now();
    for (let i = 0; i < n; i++)
      if (!verifyXmlSignature(parseUntrustedXml(xml), certificate)[0]) throw new Error('unverified');
    return (performance.now() - started) / n;
  };
  round(500);
  const rounds = Array.from({ length: 8 }, () => round(400)).sort((a, b) => a - b);
  return `| signature check of one signed response, in this process | ${rounds[4]!.toFixed(3)} ms each | | the verifier thread's work per sign-in (median of 8 × 400) |`;
}

/** Sends every body with `concurrency` in flight; rate and latency percentiles. */
async function inFlight(concurrency: number, bodies: string[], send: (body: string) => Promise<void>) {
  const each: [start: number, ms: number][] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++]!;
        const t = performance.now();
        await send(body);
        each.push([t - started, performance.now() - t]);
      }
    }),
  );
  const ms = performance.now() - started;
  const times = each.map(([, latency]) => latency).sort((a, b) => a - b);
  const at = (p: number) => times[Math.min(times.length - 1, Math.ceil(p * times.length) - 1)]!;
  return { perSecond: (bodies.length * 1000) / ms, p50: at(0.5), p99: at(0.99), each };
}

function acsClient(port: number, path: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
  return (body: string, expected: number) =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            if (res.statusCode === expected) return resolve();
            const text = Buffer.concat(chunks).toString();
            const reason = /data-reason="([^"]+)"/.exec(text)?.[1] ?? text.slice(0, 200);
            reject(new Error(`ACS: ${res.statusCode} (${reason}), expected ${expected}`));
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
}
