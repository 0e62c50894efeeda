import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Express } from 'express';
import type { AppContext } from '../../src/context.ts';
import { addressRefusal, type Resolve } from '../../src/core/webhook-url.ts';
import { createApp } from '../../src/app.ts';
import { postWebhook } from '../../src/sync/webhooks.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';

/** Webhook URLs against server-side request forgery: checked when saved and when sent. */
let ctx: AppContext;
let app: Express;
let adminKey: string;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;

beforeAll(async () => {
  ctx = await createTestContext();
  app = createApp(ctx);
  adminKey = (await createTestOrganization(ctx, 'ssrf')).adminKey;
  receiver = await startWebhookReceiver();
});
afterAll(async () => {
  await receiver.close();
  await ctx.database.close();
});

/** A DNS that answers each lookup of any name with the next of `answers` (the last one repeats). */
function scriptedDns(...answers: string[][]) {
  const lookups: string[] = [];
  const resolve: Resolve = (hostname) => {
    lookups.push(hostname);
    const answer = answers[Math.min(lookups.length - 1, answers.length - 1)]!;
    return Promise.resolve(answer.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  };
  return { resolve, lookups };
}

const send = (url: string, options: { allowPrivate: boolean; resolve?: Resolve }) =>
  postWebhook(url, 'whsec_test', 'evt-1', '{"id":"evt-1"}', { timeoutMs: 5_000, ...options });

describe('addresses a webhook may not reach', () => {
  it('refuses private, loopback, link-local, unique-local, mapped, NAT64, 6to4 and documentation ranges', () => {
    const refused = [
      '0.0.0.0',
      '10.1.2.3',
      '100.64.0.1',
      '127.0.0.1',
      '169.254.169.254',
      '172.16.0.1',
      '192.0.0.8',
      '192.0.2.1',
      '192.168.1.1',
      '198.18.0.1',
      '198.51.100.1',
      '203.0.113.1',
      '224.0.0.1',
      '240.0.0.1',
      '255.255.255.255',
      '::',
      '::1',
      '::7f00:1', // IPv4-compatible 127.0.0.1
      '::ffff:127.0.0.1',
      '::ffff:a9fe:a9fe', // mapped 169.254.169.254
      '64:ff9b::7f00:1', // NAT64 of 127.0.0.1
      '64:ff9b::a00:1', // NAT64 of 10.0.0.1
      '64:ff9b:1::1',
      '2002:7f00:1::1', // 6to4 of 127.0.0.1
      '100::1',
      '2001:db8::1',
      'fc00::1',
      'fd12:3456::1',
      'fe80::1',
      'fe80::1%eth0',
      'ff02::1',
    ];
    for (const address of refused) expect(addressRefusal(address), address).not.toBeNull();
    for (const address of ['8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1'])
      expect(addressRefusal(address), address).toBeNull();
  });
});

describe('saving an endpoint', () => {
  it('answers 400 naming the range for a private literal or a name that resolves to one, and saves nothing', async () => {
    for (const [url, named] of [
      ['http://127.0.0.1:9/x', /127\.0\.0\.1 \(loopback/],
      ['http://[::7f00:1]/x', /IPv4-compatible/],
      ['http://[64:ff9b::7f00:1]/x', /NAT64 for 127\.0\.0\.1/],
      ['http://[::ffff:169.254.169.254]/x', /IPv4-mapped for 169\.254\.169\.254 \(link-local/],
      ['http://2130706433/x', /127\.0\.0\.1/], // 127.0.0.1 as one number
      ['http://localhost:9/x', /loopback/],
    ] as const) {
      const res = await request(app)
        .post('/api/webhooks')
        .set('authorization', `Bearer ${adminKey}`)
        .send({ url })
        .expect(400);
      expect(res.body.error).toBe('invalid');
      expect(res.body.message, url).toMatch(/not a public address/);
      expect(res.body.message, url).toMatch(named);
    }
    expect((await request(app).get('/api/webhooks').set('authorization', `Bearer ${adminKey}`)).body.items).toEqual([]);
  });
});

describe('sending', () => {
  it('looks the name up once and connects to the address it checked (a rebinding DNS answers otherwise later)', async () => {
    // First answer: where the receiver listens; any later one: a loopback address nothing listens on.
    const dns = scriptedDns(['127.0.0.1'], ['127.0.0.2']);
    await send(`http://hooks.rebind.test:${receiver.port}/hooks`, { allowPrivate: true, resolve: dns.resolve });
    expect(dns.lookups).toEqual(['hooks.rebind.test']);
    expect(receiver.received).toHaveLength(1);
    // The request still names the host (Host header; SNI under https).
    expect(receiver.hosts).toEqual([`hooks.rebind.test:${receiver.port}`]);
  });

  it('keeps the connection to the address it checked for the next posts', async () => {
    const before = receiver.connections();
    for (let post = 0; post < 3; post++) await send(receiver.url, { allowPrivate: true });
    expect(receiver.connections() - before).toBeLessThanOrEqual(1);
    expect(receiver.received.slice(-3).map((r) => r.status)).toEqual([204, 204, 204]);
  });

  it('refuses, at send time, a name with any private address, and a literal private URL', async () => {
    const before = receiver.received.length;
    const dns = scriptedDns(['8.8.8.8', '127.0.0.1']);
    await expect(
      send(`http://hooks.mixed.test:${receiver.port}/hooks`, { allowPrivate: false, resolve: dns.resolve }),
    ).rejects.toThrow(/not a public address: 127\.0\.0\.1 \(loopback/);
    await expect(send(receiver.url, { allowPrivate: false })).rejects.toThrow(/not a public address/);
    await expect(send(`http://[::ffff:127.0.0.1]:${receiver.port}/hooks`, { allowPrivate: false })).rejects.toThrow(
      /IPv4-mapped/,
    );
    expect(dns.lookups).toHaveLength(1);
    expect(receiver.received).toHaveLength(before);
  });

  it('does not follow a redirect: a 3xx is a failed delivery', async () => {
    receiver.setMode('redirect');
    const before = receiver.received.length;
    try {
      await expect(send(receiver.url, { allowPrivate: true })).rejects.toThrow(
        /HTTP 302 \(redirects are not followed\)/,
      );
      expect(receiver.received).toHaveLength(before + 1);
    } finally {
      receiver.setMode('ok');
    }
  });
});
