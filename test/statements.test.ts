import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, inTransaction, type Sql } from '../src/storage/database.ts';
import { plannedEachRun, Statement } from '../src/storage/statements.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

let db: TestDatabase;
let sql: Sql;
let plain: postgres.Sql;
const sent: string[] = [];
const plainSent: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false, poolMax: 1 });
  await db.sql`create table statement_probe (id int primary key, note text, doc jsonb)`;
  sql = connect(db.url, 1, { onQuery: (query) => sent.push(query) });
  // postgres.js alone, as orgsync used it: the reference for what is sent.
  plain = postgres(db.url, { max: 1, onnotice: () => {}, debug: (_c, query) => plainSent.push(query) });
});
afterAll(async () => {
  await sql.end();
  await plain.end();
  await db.close();
});

/** The same statement, built from fragments in the same way on `s`. */
function composed(s: Sql | postgres.Sql, ids: number[]) {
  const note = (n: string) => s`note = ${n}`;
  const either = [note('a'), s`or`, note('b')];
  return s`
    select id, ${s('note')}, doc->>'k' as k, ${s`${'literal'}::text`} as t
    from statement_probe
    where id = any(${ids}::int[]) and (${either} or ${s`${s`doc @> ${s.json({ k: 'v' })}`}`})
    order by id ${s.unsafe('desc')}`;
}

describe('statements composed of fragments', () => {
  it('sends the text and parameters postgres.js would, as one query, and answers the same rows', async () => {
    await sql`insert into statement_probe values (1, 'a', ${sql.json({ k: 'x' })}), (2, 'z', ${sql.json({ k: 'v' })}), (3, 'b', null)`;
    sent.length = 0;
    plainSent.length = 0;
    const rows = await composed(sql, [1, 2, 3]);
    const plainRows = await composed(plain, [1, 2, 3]);
    expect(rows.map((r) => r.id)).toEqual([3, 2, 1]);
    expect([...rows]).toEqual([...plainRows]);
    expect(sent).toHaveLength(1);
    expect(sent).toEqual(plainSent.slice(-1)); // its first query reads the array types

    expect(sent[0]).toContain('"note"');
    expect(sent[0]).toMatch(
      /where id = any\(\$2::int\[\]\) and \( note = \$3 or note = \$4 or doc @> \$5\)\s+order by id desc$/,
    );
  });

  it('writes each text afresh where identifiers, fragments or lists fill one template differently', async () => {
    const listed = (s: Sql | postgres.Sql, column: string, direction: string, notes: string[]) =>
      s`select ${s(column)} as v from statement_probe
        where ${notes.length ? notes.map((n) => s`note = ${n} or`) : s`false or`} false
        order by 1 ${s.unsafe(direction)}`;
    const cases: [string, string, string[]][] = [
      ['id', 'asc', ['a']],
      ['note', 'asc', ['a']],
      ['id', 'desc', ['a']],
      ['id', 'asc', ['a', 'b', 'z']],
      ['id', 'asc', []],
      ['id', 'asc', ['a']],
    ];
    for (const [column, direction, notes] of cases) {
      sent.length = 0;
      plainSent.length = 0;
      expect([...(await listed(sql, column, direction, notes))]).toEqual([
        ...(await listed(plain, column, direction, notes)),
      ]);
      expect(sent).toEqual(plainSent);
    }
  });

  it('makes no postgres.js query of a fragment, and sends nothing until the statement is awaited', async () => {
    sent.length = 0;
    const fragment = sql`select ${1}::int as one`;
    expect(fragment).toBeInstanceOf(Statement);
    expect(fragment).not.toBeInstanceOf(Promise);
    await Promise.resolve();
    expect(sent).toEqual([]);
    expect(await fragment).toEqual([{ one: 1 }]);
    expect(await fragment.values().then((r) => r)).toEqual([{ one: 1 }]); // made once: shape fixed
    expect(await sql`select ${2}::int as two`.values()).toEqual([[2]]);
  });

  it('composes the same way in transactions, savepoints and reserved connections', async () => {
    const row = (id: number, note: string) => sql`(${id}, ${note})`;
    await sql.begin(async (tx) => {
      await tx`insert into statement_probe (id, note) values ${row(10, 'in begin')}`;
      await tx
        .savepoint(async (sp) => {
          await sp`insert into statement_probe (id, note) values ${row(11, 'rolled back')}`;
          throw new Error('undo');
        })
        .catch(() => {});
    });
    await inTransaction(sql, async (tx) => {
      await tx`insert into statement_probe (id, note) values ${row(12, 'in inTransaction')}`;
    });
    const reserved = await sql.reserve();
    try {
      await reserved`insert into statement_probe (id, note) values ${row(13, 'reserved')}`;
    } finally {
      reserved.release();
    }
    expect(await sql`select id, note from statement_probe where id >= 10 order by id`).toEqual([
      { id: 10, note: 'in begin' },
      { id: 12, note: 'in inTransaction' },
      { id: 13, note: 'reserved' },
    ]);
  });

  it("hands a statement with postgres.js's helpers to postgres.js", async () => {
    const rows = [
      { id: 20, note: 'helper' },
      { id: 21, note: 'helper too' },
    ];
    await sql`insert into statement_probe ${sql(rows, 'id', 'note')} ${sql`on conflict do nothing`}`;
    expect(await sql`select count(*)::int as n from statement_probe where note like 'helper%'`).toEqual([{ n: 2 }]);
  });

  it('fails as postgres.js did: the error names the statement it came from', async () => {
    const failed = await sql`insert into statement_probe (id) values (${1}) ${sql`returning id`}`.catch(
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(postgres.PostgresError);
    expect(failed).toMatchObject({ code: '23505', query: 'insert into statement_probe (id) values ($1) returning id' });
  });

  it('sends a statement planned at each run unnamed: the session keeps no prepared statement of it', async () => {
    const prepared = () =>
      sql<
        { statement: string }[]
      >`select statement from pg_prepared_statements where statement like ${'%probe_marker%'}`;
    await plannedEachRun(sql`select 1 as probe_marker_each_run where ${1} = 1`);
    await sql`select 1 as probe_marker_kept where ${1} = 1`;
    const kept = (await prepared()).map((row) => row.statement);
    expect(kept.some((text) => text.includes('probe_marker_kept'))).toBe(true);
    expect(kept.some((text) => text.includes('probe_marker_each_run'))).toBe(false);
  });
});
