import type { Express } from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import { systemActor } from '../../src/core/actor.ts';
import { recordAudit } from '../../src/core/audit.ts';
import { acsShared } from '../../src/saml/acs-shared.ts';
import { recordAttempt, refusalLog, type RefusalRecord } from '../../src/saml/attempts.ts';
import { connect, type Sql } from '../../src/storage/database.ts';
import { createTestOrganization } from '../support/context.ts';
import { IDP_ENTITY_ID, encode, responseXml, signAssertion } from './support/idp.ts';
import { samlFixture, startLogin, type SamlFixture } from './support/setup.ts';

/**
 * What the ACS costs the database when posts come in numbers: the statements and round trips of
 * a sign-in and of a refusal, counted on a pool that reports every statement it sends; what posts
 * arriving together share (the reads of their organization and connection, one write for their
 * refusals' attempt rows and audit entries); and that every outcome still reaches the attempt
 * log and the audit as each post would write it alone, failures included.
 */
let f: SamlFixture;
let counted: Sql;
let app: Express;
/** The statements sent, each with the turn of the event loop it was sent in. */
let sent: { query: string; turn: number }[] = [];
let turn = 0;
let turnOpen = false;

beforeAll(async () => {
  f = await samlFixture('load');
  // One connection: what it has sent once it sends again without describing it first, so the
  // counts below do not depend on which connection of a pool a statement happens to take.
  counted = connect((f.ctx.database as unknown as { url: string }).url, 1, {
    onQuery: (query) => {
      // postgres.js writes what is asked in one turn of the event loop together (setImmediate):
      // statements of one turn on one connection take one round trip.
      if (!turnOpen) {
        turnOpen = true;
        setImmediate(() => {
          turn++;
          turnOpen = false;
        });
      }
      if (!/pg_catalog/.test(query)) sent.push({ query: query.replace(/\s+/g, ' ').trim(), turn });
    },
  });
  app = createApp({ ...f.ctx, sql: counted });
  // Every statement counted below sent once already: a sign-in of each kind, a refusal.
  await post(signAssertion(responseXml({ ...site(), nameId: 'owner@load.test' }), f.idp)).expect(303);
  const requestId = await startLogin(f, '/app');
  const response = responseXml({ ...site(), nameId: 'owner@load.test', inResponseTo: requestId });
  await post(signAssertion(response, f.idp), f.browser.header(`/saml/${f.organization.slug}/acs`)).expect(303);
  await post(responseXml({ ...site(), nameId: 'owner@load.test' })).expect(403);
});
afterAll(async () => {
  await counted.end();
  await f.ctx.database.close();
});

const site = () => ({ acsUrl: f.acsUrl, audience: f.audience });
const post = (xml: string, cookie = '') =>
  request(app)
    .post(`/saml/${f.organization.slug}/acs`)
    .set('cookie', cookie)
    .type('form')
    .send({ SAMLResponse: encode(xml) });

async function counting(run: () => Promise<unknown>) {
  sent = [];
  await run();
  if (process.env.SHOW_STATEMENTS) console.log(sent.map((s) => `${s.turn} ${s.query.slice(0, 150)}`));
  return { statements: sent.map((s) => s.query), turns: new Set(sent.map((s) => s.turn)).size };
}

const refusalsOf = (organizationId: string) =>
  f.ctx.sql<{ reason: string; message: string; idpEntityId: string | null; nameId: string | null }[]>`
    select reason, message, idp_entity_id, name_id from saml_attempts
    where organization_id = ${organizationId} and outcome = 'refused' order by id`;

const refusalAuditOf = (organizationId: string) =>
  f.ctx.sql<
    {
      channel: string;
      actorType: string;
      actorId: string | null;
      actorName: string;
      targetType: string | null;
      targetId: string | null;
      details: Record<string, unknown>;
    }[]
  >`
    select channel, actor_type, actor_id, actor_name, target_type, target_id, details from audit_log
    where organization_id = ${organizationId} and action = 'sso.refused' order by id`;

describe('the round trips of one post', () => {
  it('a member signing in: four (organization and connection, replay cache, the reads, the writes with COMMIT)', async () => {
    const { statements, turns } = await counting(() =>
      post(signAssertion(responseXml({ ...site(), nameId: 'owner@load.test' }), f.idp)).expect(303),
    );
    expect(turns).toBe(4);
    expect(statements.filter((s) => /^(begin|commit)$/.test(s))).toEqual(['begin', 'commit']);
    expect(statements.some((s) => s.startsWith('insert into saml_attempts'))).toBe(true);
  });

  it('an SP-initiated sign-in: four too, the pending request consumed with the reads', async () => {
    const requestId = await startLogin(f, '/app');
    const cookie = f.browser.header(`/saml/${f.organization.slug}/acs`);
    const { turns } = await counting(() =>
      post(
        signAssertion(responseXml({ ...site(), nameId: 'owner@load.test', inResponseTo: requestId }), f.idp),
        cookie,
      ).expect(303),
    );
    expect(turns).toBe(4);
  });

  it('a refusal: two (organization and connection, then the attempt row and audit entry in one statement)', async () => {
    const { statements, turns } = await counting(() =>
      post(responseXml({ ...site(), nameId: 'owner@load.test' })).expect(403),
    );
    expect(turns).toBe(2);
    expect(statements.filter((s) => /saml_attempts|audit_log/.test(s))).toHaveLength(1);
  });
});

describe('posts arriving together', () => {
  it('share one read of their organization and connection while it is in flight, and read anew after', async () => {
    const shared = acsShared(counted);
    const { statements } = await counting(async () => {
      const found = await Promise.all(Array.from({ length: 20 }, () => shared.find('load', IDP_ENTITY_ID)));
      expect(new Set(found).size).toBe(1);
      expect(found[0]!.organization!.id).toBe(f.organization.id);
      expect(found[0]!.connection!.id).toBe(f.connectionId);
      const [none, unknown] = await Promise.all([
        shared.find('nowhere', IDP_ENTITY_ID),
        shared.find('load', 'https://unknown.test'),
      ]);
      expect(none).toEqual({ organization: null, connection: null });
      expect(unknown).toMatchObject({ organization: { id: f.organization.id }, connection: null });
    });
    expect(statements.filter((s) => s.startsWith('select * from organizations'))).toHaveLength(3);
    expect(statements.filter((s) => s.startsWith('select * from saml_connections'))).toHaveLength(3);
    // Nothing is kept once the read is answered.
    const { statements: again } = await counting(() => shared.find('load', IDP_ENTITY_ID));
    expect(again).toHaveLength(2);
  });

  it('write their refusals together: every attempt row and audit entry as each would be written alone', async () => {
    const other = await createTestOrganization(f.ctx, 'load-other');
    const twin = await createTestOrganization(f.ctx, 'load-twin');
    const refusals: RefusalRecord[] = Array.from({ length: 40 }, (_, i) => {
      const organizationId = i % 2 ? other.organization.id : f.organization.id;
      const idpEntityId = i % 3 ? `https://idp-${i}.test` : null;
      const details = {
        reason: i % 5 ? 'signature_missing' : 'unknown_issuer',
        message: `refusal ${i} "quoted", back\\slash, {braces}, ünïcode`,
        connectionId: i % 4 ? null : f.connectionId,
        idpEntityId,
        nameId: i % 2 ? `person-${i}@load.test` : null,
        email: null,
      };
      return {
        organizationId,
        attempt: { outcome: 'refused', ...details },
        audit: {
          organizationId,
          actor: systemActor('sso', idpEntityId ?? 'unknown IdP'),
          action: 'sso.refused',
          target: null,
          details,
        },
      };
    });
    const log = refusalLog(counted);
    const { statements } = await counting(() => Promise.all(refusals.map(log)));
    // The first goes at once; the 39 arriving while it is in flight go in the next statement.
    expect(statements).toHaveLength(2);

    // The same refusals written one by one, as before, into a twin organization.
    for (const r of refusals) {
      await recordAttempt(f.ctx.sql, twin.organization.id, r.attempt);
      await recordAudit(
        f.ctx.sql,
        twin.organization.id,
        r.audit.actor,
        r.audit.action,
        r.audit.target,
        r.audit.details,
      );
    }
    const [mine, others, twins] = [f.organization.id, other.organization.id, twin.organization.id];
    const inOrder = (rows: unknown[], parity: number) => rows.filter((_, i) => i % 2 === parity);
    const expectedAttempts = await refusalsOf(twins);
    const expectedAudit = await refusalAuditOf(twins);
    expect([...(await refusalsOf(mine)).slice(-20)]).toEqual(inOrder(expectedAttempts, 0));
    expect([...(await refusalsOf(others))]).toEqual(inOrder(expectedAttempts, 1));
    expect([...(await refusalAuditOf(mine)).slice(-20)]).toEqual(inOrder(expectedAudit, 0));
    expect([...(await refusalAuditOf(others))]).toEqual(inOrder(expectedAudit, 1));
    expect(expectedAudit[0]).toMatchObject({ channel: 'sso', actorType: 'system', actorId: null, targetId: null });
  });
});

describe('a failed write of refusals', () => {
  const poison = async (sqlstate: string, when: string) => {
    await f.ctx.sql.unsafe(`
      create or replace function load_poison() returns trigger language plpgsql as $$
      begin
        if ${when} then raise exception 'poisoned attempt' using errcode = '${sqlstate}'; end if;
        return new;
      end $$;
      drop trigger if exists load_poison on saml_attempts;
      create trigger load_poison before insert on saml_attempts for each row execute function load_poison();`);
  };
  afterAll(async () => {
    await f.ctx.sql`drop trigger if exists load_poison on saml_attempts`;
  });

  it('fails only the post whose rows cannot be written; the others are refused and logged as alone', async () => {
    await poison('P0001', `new.idp_entity_id = 'https://poison.test' or new.name_id = 'poison'`);
    const before = (await refusalsOf(f.organization.id)).length;
    // Unknown issuers, each refused and logged under its own name; one cannot be logged.
    const issuers = Array.from({ length: 12 }, (_, i) => (i === 5 ? 'https://poison.test' : `https://junk-${i}.test`));
    const answers = await Promise.all(issuers.map((issuer) => post(responseXml({ ...site(), issuer }))));
    expect(answers.map((a) => a.status)).toEqual(issuers.map((i) => (i.includes('poison') ? 500 : 403)));
    const logged = (await refusalsOf(f.organization.id)).slice(before);
    expect(logged.map((a) => [a.reason, a.idpEntityId])).toEqual(
      expect.arrayContaining(issuers.filter((i) => !i.includes('poison')).map((i) => ['unknown_issuer', i])),
    );
    expect(logged).toHaveLength(11);
    const audited = (await refusalAuditOf(f.organization.id)).slice(-11);
    expect(audited.map((a) => a.details.message)).toEqual(logged.map((a) => a.message));

    // Deterministically in one batch: the poisoned refusal fails, its neighbours are written.
    const names = Array.from({ length: 12 }, (_, i) => (i === 5 ? 'poison' : `junk-${i}@load.test`));
    const log = refusalLog(f.ctx.sql);
    const settled = await Promise.allSettled(
      names.map((nameId) =>
        log({
          organizationId: f.organization.id,
          attempt: { outcome: 'refused', reason: 'malformed', nameId },
          audit: {
            organizationId: f.organization.id,
            actor: systemActor('sso', 'unknown IdP'),
            action: 'sso.refused',
            target: null,
            details: { reason: 'malformed', nameId },
          },
        }),
      ),
    );
    expect(settled.map((s) => s.status)).toEqual(names.map((n) => (n.startsWith('poison') ? 'rejected' : 'fulfilled')));
    expect((await refusalsOf(f.organization.id)).slice(-11).map((a) => a.nameId)).toEqual(
      names.filter((n) => !n.startsWith('poison')),
    );
  });

  it('answers every post 503 when the database is out of reach, as each would be alone', async () => {
    await poison('57P01', 'true');
    const before = (await refusalsOf(f.organization.id)).length;
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => post(responseXml({ ...site(), nameId: `down-${i}@load.test` }))),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(503));
    expect(await refusalsOf(f.organization.id)).toHaveLength(before);
  });
});
