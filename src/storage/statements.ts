import type postgres from 'postgres';

/**
 * Statements composed of fragments, without a postgres.js query per fragment.
 *
 * In postgres.js every sql`…` is a query, and so a promise, even when it only becomes part of
 * another statement; a SCIM create's statement is built from about 30 of them. Under load those
 * objects outlive a young-generation collection or two and are promoted, and the collector copies
 * them on the way (about half of what a create allocated survived each scavenge, against a few
 * percent for one flat statement: bench/RESULTS.md, 2026-12-03 17:30). Here sql`…` on the pool or
 * a transaction makes a plain `Statement` (its strings and values). Awaited or executed, it is
 * flattened into one text with numbered parameters and sent as a single postgres.js query
 * (`unsafe`, prepared as a tagged query would be): the same text, parameters and protocol as
 * before, so answers, errors and prepared statements are unchanged. The text is written once per
 * shape (which templates, nested how, with which identifiers) and kept; a statement of a known
 * shape only collects its values.
 *
 * Values other than fragments are what postgres.js takes: `sql.json(…)` and other parameters,
 * identifiers (`sql('name')`), its own queries (`sql.unsafe('asc')`) as text. A statement holding
 * one of postgres.js's helpers (`sql(rows, …columns)`) is handed to postgres.js as it is.
 */

type PgSql = postgres.Sql | postgres.TransactionSql | postgres.ReservedSql;
type PendingQuery = postgres.PendingQuery<postgres.Row[]>;

/** postgres.js's classes, read off objects it makes (the package does not export them). */
interface Kinds {
  query: new (...args: never[]) => { strings: readonly string[]; args: unknown[] };
  identifier: new (...args: never[]) => { value: string };
  builder: new (...args: never[]) => unknown;
}

export class Statement {
  private query: PendingQuery | undefined;
  /** Rows as arrays of values (`.values()`) or of raw buffers (`.raw()`), as postgres.js has it. */
  private rowsAs: 'values' | 'raw' | undefined;
  /** Sent unnamed, so that PostgreSQL plans it at each run (plannedEachRun). */
  planEachRun = false;

  constructor(
    /** postgres.js's own sql of the pool or transaction the statement was written on. */
    readonly db: PgSql,
    private readonly kinds: Kinds,
    readonly strings: TemplateStringsArray,
    readonly args: unknown[],
  ) {}

  /** The postgres.js query, made once: nothing is sent until it is awaited or executed. */
  private pending(): PendingQuery {
    if (this.query) return this.query;
    const shape: Shape = { key: '', values: [], portable: true };
    shapeOf(this, this.kinds, shape);
    let query: PendingQuery = shape.portable
      ? this.db.unsafe(
          textOf(this, this.kinds, shape.key),
          shape.values as postgres.ParameterOrJSON<never>[],
          {
            prepare: !this.planEachRun,
            simple: false,
          } as postgres.UnsafeQueryOptions,
        )
      : (asTagged(this) as PendingQuery);
    if (this.rowsAs === 'values') query = query.values() as unknown as PendingQuery;
    if (this.rowsAs === 'raw') query = query.raw() as unknown as PendingQuery;
    return (this.query = query);
  }

  values(): this {
    this.rowsAs = 'values';
    return this;
  }

  raw(): this {
    this.rowsAs = 'raw';
    return this;
  }

  execute(): this {
    void this.pending().execute();
    return this;
  }

  then<A = postgres.RowList<postgres.Row[]>, B = never>(
    onfulfilled?: ((value: postgres.RowList<postgres.Row[]>) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.pending().then(onfulfilled, onrejected);
  }

  catch<B = never>(onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null) {
    return this.pending().catch(onrejected);
  }

  finally(onfinally?: (() => void) | null) {
    return this.pending().finally(onfinally);
  }

  describe() {
    return this.pending().describe();
  }

  cursor(...args: unknown[]) {
    return (this.pending().cursor as (...a: unknown[]) => unknown)(...args);
  }

  forEach(fn: (row: postgres.Row) => void) {
    return this.pending().forEach(fn);
  }

  cancel() {
    return this.pending().cancel();
  }
}

/**
 * Has PostgreSQL plan `query` (a statement of the pool's or a transaction's sql`…`) each time it
 * runs, for its tables as they are then, instead of keeping a plan per connection. A prepared
 * statement's plan turns generic after five runs and stays until its tables are analyzed again;
 * one made while a queue was short, when a scan looks cheaper than a lookup by key, reads the
 * whole queue once it is long. For a statement over a table that swings from empty to thousands
 * of rows between two ANALYZEs; planning it costs about a millisecond.
 */
export function plannedEachRun<Q>(query: Q): Q {
  if (query instanceof Statement) query.planEachRun = true;
  return query;
}

type Composed = { strings: readonly string[]; args: unknown[] };

interface Shape {
  /** Names the statement's text: statements of one key have one text (see textOf). */
  key: string;
  values: unknown[];
  /** False once a value needs postgres.js's own composition (a helper such as sql(rows, …)). */
  portable: boolean;
}

/** Each template's number, for keys: its text is fixed where it is written. */
const templateIds = new WeakMap<readonly string[], number>();
let templates = 0;

function keyOf(strings: readonly string[]): string {
  // postgres.js's unsafe queries hold their text in an array of their own.
  if (!Array.isArray((strings as TemplateStringsArray).raw)) return `u${strings[0]!.length}:${strings[0]}`;
  let id = templateIds.get(strings);
  if (id === undefined) templateIds.set(strings, (id = templates++));
  return `t${id}`;
}

/**
 * Collects the statement's values, in order, and the key of its text: which templates, in which
 * nesting, with which identifiers. It walks the fragments as postgres.js's stringify does.
 */
function shapeOf({ strings, args }: Composed, kinds: Kinds, shape: Shape): void {
  shape.key += keyOf(strings);
  for (let i = 1; i < strings.length; i++) {
    const value = args[i - 1];
    if (value instanceof Statement || value instanceof kinds.query) shapeOf(value, kinds, shape);
    else if (isFragmentList(value, kinds)) {
      shape.key += '[';
      for (const each of value) shapeOf(each, kinds, shape);
      shape.key += ']';
    } else if (value instanceof kinds.identifier) shape.key += `i${value.value.length}:${value.value}`;
    else if (value instanceof kinds.builder) shape.portable = false;
    else {
      shape.values.push(value);
      shape.key += '$';
    }
    shape.key += ';';
  }
}

/** A list of fragments (postgres.js writes a space before each), not an array parameter. */
function isFragmentList(value: unknown, kinds: Kinds): value is Composed[] {
  return Array.isArray(value) && (value[0] instanceof Statement || value[0] instanceof kinds.query);
}

/** The texts of the statements sent so far, by key; a bounded number (a cache miss builds it again). */
const texts = new Map<string, string>();
const MAX_TEXTS = 5_000;

function textOf(statement: Statement, kinds: Kinds, key: string): string {
  let text = texts.get(key);
  if (text === undefined) {
    const built = { text: '', parameters: 0 };
    render(statement, kinds, built);
    text = built.text;
    if (texts.size < MAX_TEXTS) texts.set(key, text);
  }
  return text;
}

/** The statement's text with numbered parameters, as postgres.js's stringify would write it. */
function render({ strings, args }: Composed, kinds: Kinds, built: { text: string; parameters: number }): void {
  built.text += strings[0];
  for (let i = 1; i < strings.length; i++) {
    const value = args[i - 1];
    if (value instanceof Statement || value instanceof kinds.query) render(value, kinds, built);
    else if (isFragmentList(value, kinds))
      for (const each of value) {
        built.text += ' ';
        render(each, kinds, built);
      }
    else if (value instanceof kinds.identifier) built.text += value.value;
    else built.text += `$${++built.parameters}`;
    built.text += strings[i];
  }
}

/** The statement as postgres.js's own nested queries, for what only postgres.js composes. */
function asTagged(statement: Statement): unknown {
  const args = statement.args.map((value) =>
    value instanceof Statement
      ? asTagged(value)
      : Array.isArray(value)
        ? value.map((each: unknown) => (each instanceof Statement ? asTagged(each) : each))
        : value,
  );
  return (statement.db as unknown as (s: TemplateStringsArray, ...a: unknown[]) => unknown)(statement.strings, ...args);
}

const wrapped = new WeakMap<object, PgSql>();
const wrappers = new WeakSet<object>();

/**
 * `sql` whose tagged calls make Statements; so do those of the transactions, savepoints and
 * reserved connections it opens. Everything else is postgres.js's.
 */
export function withStatements<T extends PgSql>(sql: T): T {
  const probe = sql as unknown as ((...a: unknown[]) => object) & { unsafe(text: string): object };
  const kinds: Kinds = {
    query: probe.unsafe('').constructor as Kinds['query'],
    identifier: probe('orgsync').constructor as Kinds['identifier'],
    builder: probe({}).constructor as Kinds['builder'],
  };
  return wrap(sql, kinds);
}

function wrap<T extends PgSql>(sql: T, kinds: Kinds): T {
  if (wrappers.has(sql)) return sql;
  const known = wrapped.get(sql);
  if (known) return known as T;
  const withTx =
    (open: (...a: unknown[]) => unknown) =>
    (...args: unknown[]) => {
      const fn = args[args.length - 1] as (tx: PgSql) => unknown;
      args[args.length - 1] = (tx: PgSql) => fn(wrap(tx, kinds));
      return open(...args);
    };
  const proxy = new Proxy(sql, {
    apply(target, self, args: unknown[]) {
      const strings = args[0] as TemplateStringsArray | undefined;
      if (Array.isArray(strings) && Array.isArray((strings as TemplateStringsArray).raw))
        return new Statement(target, kinds, strings, args.slice(1));
      return Reflect.apply(target as (...a: unknown[]) => unknown, self, args);
    },
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (property === 'begin' || property === 'savepoint')
        return withTx(value.bind(target) as (...a: unknown[]) => unknown);
      if (property === 'reserve')
        return async () => wrap(await (value as () => Promise<postgres.ReservedSql>).call(target), kinds);
      return value;
    },
  });
  wrapped.set(sql, proxy);
  wrappers.add(proxy);
  return proxy;
}
