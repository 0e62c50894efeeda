import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { createTestContext, createTestOrganization } from '../support/context.ts';
import { startOrgsyncProcess, type OrgsyncProcess } from '../support/process.ts';
import { encode, makeIdpKeys, responseXml, signAssertion } from './support/idp.ts';
import { idpMetadataXml } from './support/setup.ts';

/**
 * Sign-in against a real process (`node --import tsx src/main.ts`), not the app inside vitest:
 * Node's own ESM loader sees CommonJS packages such as samlify differently from vitest's bundler.
 */
let ctx: AppContext;
let orgsync: OrgsyncProcess;
let base: string;

beforeAll(async () => {
  ctx = await createTestContext();
  const url = (ctx.database as unknown as { url: string }).url;
  orgsync = await startOrgsyncProcess({ DATABASE_URL: url, RECONCILER: 'false' });
  base = orgsync.url;
});

afterAll(async () => {
  await orgsync?.stop();
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

    const lines = orgsync
      .output()
      .split('\n')
      .filter((line) => line.trim() !== '');
    expect(lines.filter((line) => !line.startsWith('{'))).toEqual([]);
  });
});
