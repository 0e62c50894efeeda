import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { TEST_SERVER_SECRET, createTestContext, createTestOrganization } from '../support/context.ts';
import { encode, makeIdpKeys, responseXml, signAssertion } from './support/idp.ts';
import { idpMetadataXml } from './support/setup.ts';

/**
 * Sign-in against the real process (`node --import tsx src/main.ts`), not the app inside vitest:
 * Node's own ESM loader sees CommonJS packages such as samlify differently from vitest's bundler.
 */
let ctx: AppContext;
let child: ChildProcessWithoutNullStreams;
let base: string;
let output = '';

beforeAll(async () => {
  ctx = await createTestContext();
  const url = (ctx.database as unknown as { url: string }).url;
  child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: url,
      SERVER_SECRET: TEST_SERVER_SECRET,
      PORT: '0',
      PUBLIC_URL: 'https://orgsync.test',
      RECONCILER: 'false',
      LOG_LEVEL: 'info',
    },
  });
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  base = await new Promise<string>((resolve, reject) => {
    const check = () => {
      const match = /"url":"(http:\/\/[^"]+)".*orgsync listening/.exec(output);
      if (match) resolve(match[1]!);
    };
    child.stdout.on('data', check);
    child.once('exit', (code) => reject(new Error(`orgsync exited (${code}):\n${output}`)));
  });
});

afterAll(async () => {
  if (child?.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  await ctx?.database.close();
});

describe('the orgsync process', () => {
  it('signs a person in through SAML and logs only JSON lines', async () => {
    const { adminKey } = await createTestOrganization(ctx, 'hooli');
    const idp = makeIdpKeys();
    const created = await fetch(`${base}/api/saml/connections`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'IdP', metadataXml: idpMetadataXml([idp.certificate]) }),
    });
    expect(created.status, await created.clone().text()).toBe(201);

    const xml = signAssertion(
      responseXml({
        acsUrl: 'https://orgsync.test/saml/hooli/acs',
        audience: 'https://orgsync.test/saml/hooli/metadata',
        nameId: 'owner@hooli.test',
      }),
      idp,
    );
    const acs = await fetch(`${base}/saml/hooli/acs`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ SAMLResponse: encode(xml) }),
    });
    expect(acs.status, await acs.clone().text()).toBe(303);
    const cookie = acs.headers.get('set-cookie')!.split(';')[0]!;
    const me = await fetch(`${base}/saml/me`, { headers: { cookie } });
    expect(me.status).toBe(200);
    expect((await me.json()).account.email).toBe('owner@hooli.test');

    const lines = output.split('\n').filter((line) => line.trim() !== '');
    expect(lines.filter((line) => !line.startsWith('{'))).toEqual([]);
  });
});
