import { createPrivateKey, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/context.ts';
import { systemActor } from '../../src/core/actor.ts';
import { createOrganization, type Organization } from '../../src/core/organizations.ts';
import { serviceProvider, spUrls } from '../../src/saml/service-provider.ts';
import { connect } from '../../src/storage/database.ts';
import { createTestContext } from '../support/context.ts';
import type { TestDatabase } from '../support/db.ts';

let ctx: AppContext;
let organization: Organization;

beforeAll(async () => {
  ctx = await createTestContext();
  ({ organization } = await createOrganization(
    ctx.sql,
    { name: 'First sign-ins', slug: 'first-sign-ins', ownerEmail: 'o@first.test' },
    systemActor('cli'),
  ));
});
afterAll(async () => ctx.database.close());

describe("an organization's SP entity", () => {
  // A second pool beside the test's own: the embedded database takes one connection at a time.
  it.skipIf(!process.env.DATABASE_URL)('is built once for sign-ins that arrive together', async () => {
    const sent: string[] = [];
    const pool = connect((ctx.database as TestDatabase).url, 4, { onQuery: (query) => sent.push(query) });
    try {
      // A context of its own, so nothing is built yet: the first use makes the key pair.
      const fresh: AppContext = { ...ctx, sql: pool };
      const entities = await Promise.all(Array.from({ length: 8 }, () => serviceProvider(fresh, organization)));
      expect(new Set(entities).size).toBe(1);
      // One read finds no key pair, one insert makes it, one read takes the one that won.
      expect(sent.filter((q) => /insert into saml_sp_keys/.test(q))).toHaveLength(1);
      expect(sent.filter((q) => /from saml_sp_keys/.test(q))).toHaveLength(2);
      expect(await serviceProvider(fresh, organization)).toBe(entities[0]);
    } finally {
      await pool.end();
    }
  });

  it('has a self-signed certificate for its own key, valid ten years', async () => {
    const { keys } = await serviceProvider(ctx, organization);
    const certificate = new X509Certificate(keys.certificate);
    expect(certificate.verify(certificate.publicKey)).toBe(true);
    expect(certificate.checkPrivateKey(createPrivateKey(keys.privateKey))).toBe(true);
    expect(certificate.subject).toContain(`CN=${spUrls(ctx.config.publicUrl, organization).entityId}`);
    expect(certificate.issuer).toBe(certificate.subject);
    const years = (Date.parse(certificate.validTo) - Date.parse(certificate.validFrom)) / (365 * 86_400_000);
    expect(Math.round(years)).toBe(10);
  });
});
