/**
 * The layering of ARCHITECTURE.md, checked on the source: who may import whom, and which folder
 * may query which table. It reads files only (no database), so a violation fails in seconds with
 * the file and the name that break the rule.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../src');

/** The protocol adapters: they translate a protocol into calls on core/. */
const ADAPTERS = ['scim', 'saml', 'admin', 'sync', 'console', 'notify'];

/**
 * Every table has one owner: the only folder whose code queries it (storage/ creates them all).
 * Core owns the domain; each adapter owns the bookkeeping of its own protocol.
 */
const TABLE_OWNERS: Record<string, string> = {
  organizations: 'core',
  accounts: 'core',
  roles: 'core',
  memberships: 'core',
  groups: 'core',
  group_members: 'core',
  group_member_versions: 'core',
  group_role_mappings: 'core',
  credentials: 'core',
  audit_log: 'core',
  invitations: 'core',
  invitation_imports: 'core',
  member_counts: 'core',
  organization_domains: 'core',
  sessions: 'core',
  webhook_endpoints: 'core',
  scim_users: 'core',
  scim_user_counts: 'core',
  scim_requests: 'scim',
  saml_connections: 'saml',
  saml_sp_keys: 'saml',
  saml_requests: 'saml',
  saml_replay_cache: 'saml',
  saml_attempts: 'saml',
  outbox: 'sync',
  deliveries: 'sync',
  delivery_attempts: 'sync',
  job_runs: 'sync',
};

/** Files allowed to query a table of another folder, each with its reason. */
const TABLE_EXCEPTIONS: Record<string, { tables: string[]; why: string }> = {
  // The transactional outbox: a domain event is appended in the transaction of the change it records.
  'core/events.ts': { tables: ['outbox'], why: 'core appends domain events to the outbox in the change transaction' },
  // The delivery circuit breaker keeps its state in webhook_endpoints columns (consecutive_failures,
  // circuit_open_until): delivery state, to move into a sync-owned table.
  'sync/deliver.ts': { tables: ['webhook_endpoints'], why: "the circuit breaker's columns on webhook_endpoints" },
};

interface SourceFile {
  /** Path under src/, with forward slashes. */
  name: string;
  text: string;
}

function readSources(dir = SRC): SourceFile[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'public' ? [] : readSources(full); // the console's browser code
    if (!/\.ts$/.test(entry.name)) return [];
    return [{ name: path.relative(SRC, full).split(path.sep).join('/'), text: fs.readFileSync(full, 'utf8') }];
  });
}

/** Block and line comments removed (prose may name a table or an import without using it). */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

/** The files under src/ that `file` imports (type-only imports included: they couple too). */
function importsOf(file: SourceFile): string[] {
  const specifiers = [
    ...file.text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+['"](\.{1,2}\/[^'"]+)['"]/gm),
    ...file.text.matchAll(/\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g),
  ].map((m) => m[1]!);
  return specifiers.map((s) => path.posix.normalize(path.posix.join(path.posix.dirname(file.name), s)));
}

/** A file's top-level part of src/: its folder (`scim`), or the file itself (`main.ts`). */
const part = (name: string) => name.split('/')[0]!;

function tableNames(): string[] {
  const dir = path.join(SRC, 'storage/migrations');
  return fs
    .readdirSync(dir)
    .flatMap((f) => [...fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/create table (?:if not exists )?(\w+)/gi)])
    .map((m) => m[1]!.toLowerCase());
}

/** Tables a file's SQL reads or writes: `from`, `join`, `into`, `update`, `delete from`. */
function tablesQueried(file: SourceFile): Set<string> {
  const known = new Set(Object.keys(TABLE_OWNERS));
  const found = new Set<string>();
  for (const m of withoutComments(file.text).matchAll(/\b(?:from|join|into|update)\s+([a-z_][a-z0-9_]*)\b/gi)) {
    const table = m[1]!.toLowerCase();
    if (known.has(table)) found.add(table);
  }
  return found;
}

/** Strongly connected components of more than one node (Tarjan). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const sources = readSources();

function graphOf(edges: [string, string][]): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const [from, to] of edges) {
    if (from === to) continue;
    graph.set(from, (graph.get(from) ?? new Set()).add(to));
    if (!graph.has(to)) graph.set(to, new Set());
  }
  return graph;
}

describe('layering', () => {
  it('reads the source tree', () => {
    expect(sources.length).toBeGreaterThan(50);
    expect(sources.some((f) => f.name === 'core/memberships.ts')).toBe(true);
  });

  it('core/ and storage/ import no adapter, no HTTP code and no composition file', () => {
    const allowed: Record<string, string[]> = {
      core: ['core', 'storage', 'log.ts'],
      storage: ['storage', 'config.ts', 'log.ts'],
    };
    const violations = sources
      .filter((f) => part(f.name) in allowed)
      .flatMap((f) =>
        importsOf(f)
          .filter((i) => !allowed[part(f.name)]!.includes(part(i)))
          .map((i) => `${f.name} -> ${i}`),
      );
    expect(violations).toEqual([]);
  });

  it('no cycle between the top-level folders and files of src/', () => {
    const graph = graphOf(sources.flatMap((f) => importsOf(f).map((i): [string, string] => [part(f.name), part(i)])));
    expect(cycles(graph)).toEqual([]);
  });

  it('no cycle between the files of core/', () => {
    const core = sources.filter((f) => part(f.name) === 'core');
    const graph = graphOf(
      core.flatMap((f) => importsOf(f).map((i): [string, string] => [f.name, i])).filter(([, i]) => part(i) === 'core'),
    );
    expect(cycles(graph)).toEqual([]);
  });

  it('adapters import each other only along the arrows ARCHITECTURE.md draws', () => {
    const allowed = new Set([
      'admin -> saml',
      'admin -> scim',
      'admin -> sync',
      'sync -> notify',
      'sync -> saml',
      'sync -> scim',
    ]);
    const arrows = sources
      .filter((f) => ADAPTERS.includes(part(f.name)))
      .flatMap((f) => importsOf(f).map((i) => ({ file: f.name, arrow: `${part(f.name)} -> ${part(i)}` })))
      .filter(({ file, arrow }) => ADAPTERS.includes(arrow.split(' -> ')[1]!) && part(file) !== arrow.split(' -> ')[1]);
    expect(arrows.filter(({ arrow }) => !allowed.has(arrow))).toEqual([]);
  });

  it('every table has an owner: core or one adapter', () => {
    expect(tableNames().filter((t) => !(t in TABLE_OWNERS))).toEqual([]);
    expect(Object.values(TABLE_OWNERS).filter((owner) => owner !== 'core' && !ADAPTERS.includes(owner))).toEqual([]);
    for (const folder of ADAPTERS) expect(sources.some((f) => part(f.name) === folder)).toBe(true);
  });

  it("only a table's owner queries it (adapters query no core table)", () => {
    const violations = sources.flatMap((f) => {
      if (part(f.name) === 'storage') return [];
      const exception = TABLE_EXCEPTIONS[f.name]?.tables ?? [];
      return [...tablesQueried(f)]
        .filter((t) => TABLE_OWNERS[t] !== part(f.name) && !exception.includes(t))
        .map((t) => `${f.name} queries ${t} (owned by ${TABLE_OWNERS[t]})`);
    });
    expect(violations).toEqual([]);
  });

  it('the check sees queries and imports (it would fail on a violation)', () => {
    const fake: SourceFile = {
      name: 'saml/fake.ts',
      text: "import { x } from '../admin/auth.ts';\nconst r = await db<{ a: string }[]>`select 1 from memberships m join invitations i on true`;",
    };
    expect([...tablesQueried(fake)].sort()).toEqual(['invitations', 'memberships']);
    expect(importsOf(fake)).toEqual(['admin/auth.ts']);
    expect(
      cycles(
        graphOf([
          ['admin', 'saml'],
          ['saml', 'admin'],
        ]),
      ),
    ).toEqual([['admin', 'saml']]);
  });
});
