import { isStorableText } from '../core/limits.ts';
import { scimError } from './errors.ts';

/**
 * A parser for SCIM filters (RFC 7644 §3.4.2.2). scimmy has its own, but it gets `not (a or b)`
 * wrong (it yields `not a or not b`) and refuses escaped quotes, so filters are parsed here and
 * translated to SQL (filter-sql.ts); scimmy never sees them.
 */
export type CompareOp = 'eq' | 'ne' | 'co' | 'sw' | 'ew' | 'gt' | 'ge' | 'lt' | 'le';
export type Value = string | number | boolean | null;

export type Filter =
  | { op: 'and' | 'or'; left: Filter; right: Filter }
  | { op: 'not'; filter: Filter }
  | { op: 'compare'; attr: string; compare: CompareOp; value: Value }
  | { op: 'present'; attr: string }
  /** `emails[type eq "work" and value co "@x"]`: one element of a multi-valued attribute matches. */
  | { op: 'valuePath'; attr: string; filter: Filter };

const MAX_FILTER_LENGTH = 4096;
const MAX_DEPTH = 32;
const COMPARE_OPS = new Set(['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le']);

type Token =
  | { kind: 'word'; text: string }
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: '(' | ')' | '[' | ']' };

const invalidFilter = (message: string) => scimError(400, 'invalidFilter', message);

export function parseFilter(text: string): Filter {
  if (text.length > MAX_FILTER_LENGTH) throw invalidFilter(`filter longer than ${MAX_FILTER_LENGTH} characters`);
  const parser = new Parser(tokenize(text));
  const filter = parser.orExpression(0);
  if (!parser.done()) throw invalidFilter(`unexpected ${parser.describeNext()} in filter`);
  return filter;
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
    } else if (c === '(' || c === ')' || c === '[' || c === ']') {
      tokens.push({ kind: c });
      i++;
    } else if (c === '"') {
      const end = closingQuote(text, i);
      tokens.push({ kind: 'string', value: stringLiteral(text.slice(i, end + 1)) });
      i = end + 1;
    } else {
      const match = /^[^\s()[\]"]+/.exec(text.slice(i))!;
      const word = match[0];
      tokens.push(
        /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(word)
          ? { kind: 'number', value: Number(word) }
          : { kind: 'word', text: word },
      );
      i += word.length;
    }
  }
  return tokens;
}

function stringLiteral(literal: string): string {
  let value: string;
  try {
    value = JSON.parse(literal) as string;
  } catch {
    throw invalidFilter(`bad string literal ${literal}`);
  }
  // `\u0000` escapes decode to text no column can hold.
  if (!isStorableText(value)) throw invalidFilter('a string in the filter contains a NUL character or invalid Unicode');
  return value;
}

function closingQuote(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  throw invalidFilter('unterminated string in filter');
}

class Parser {
  private position = 0;
  constructor(private readonly tokens: Token[]) {}

  done(): boolean {
    return this.position >= this.tokens.length;
  }

  describeNext(): string {
    const t = this.tokens[this.position];
    if (!t) return 'end';
    if (t.kind === 'word') return `'${t.text}'`;
    if (t.kind === 'string') return JSON.stringify(t.value);
    if (t.kind === 'number') return String(t.value);
    return `'${t.kind}'`;
  }

  orExpression(depth: number): Filter {
    let left = this.andExpression(depth);
    while (this.keyword('or')) left = { op: 'or', left, right: this.andExpression(depth) };
    return left;
  }

  private andExpression(depth: number): Filter {
    let left = this.unary(depth);
    while (this.keyword('and')) left = { op: 'and', left, right: this.unary(depth) };
    return left;
  }

  private unary(depth: number): Filter {
    if (depth > MAX_DEPTH) throw invalidFilter('filter nested too deeply');
    if (this.keyword('not')) {
      this.expect('(');
      const filter = this.orExpression(depth + 1);
      this.expect(')');
      return { op: 'not', filter };
    }
    if (this.peek('(')) {
      this.position++;
      const filter = this.orExpression(depth + 1);
      this.expect(')');
      return filter;
    }
    return this.attributeExpression(depth);
  }

  private attributeExpression(depth: number): Filter {
    const attr = this.attributePath();
    if (this.peek('[')) {
      this.position++;
      const filter = this.orExpression(depth + 1);
      this.expect(']');
      // `emails[type eq "work"].value eq "x"` is not RFC filter syntax but Entra ID sends it (when
      // matching on the work email): one element must match both, as in `emails[type eq "work" and value eq "x"]`.
      const next = this.tokens[this.position];
      if (next?.kind === 'word' && /^\.[A-Za-z$][\w$-]*$/.test(next.text)) {
        this.position++;
        return {
          op: 'valuePath',
          attr,
          filter: { op: 'and', left: filter, right: this.comparison(next.text.slice(1)) },
        };
      }
      return { op: 'valuePath', attr, filter };
    }
    return this.comparison(attr);
  }

  private comparison(attr: string): Filter {
    const op = this.tokens[this.position];
    if (op?.kind !== 'word') throw invalidFilter(`expected an operator after '${attr}'`);
    const operator = op.text.toLowerCase();
    this.position++;
    if (operator === 'pr') return { op: 'present', attr };
    if (!COMPARE_OPS.has(operator)) throw invalidFilter(`unknown operator '${op.text}'`);
    return { op: 'compare', attr, compare: operator as CompareOp, value: this.value(attr, operator) };
  }

  private value(attr: string, operator: string): Value {
    const t = this.tokens[this.position];
    this.position++;
    if (t?.kind === 'string' || t?.kind === 'number') return t.value;
    if (t?.kind === 'word') {
      const word = t.text.toLowerCase();
      if (word === 'true') return true;
      if (word === 'false') return false;
      if (word === 'null') return null;
    }
    this.position--;
    throw invalidFilter(`expected a value after '${attr} ${operator}', found ${this.describeNext()}`);
  }

  private attributePath(): string {
    const t = this.tokens[this.position];
    if (t?.kind !== 'word' || !/^(urn:[A-Za-z0-9.:_-]+:)?[A-Za-z$][\w$-]*(\.[A-Za-z$][\w$-]*)?$/.test(t.text)) {
      throw invalidFilter(`expected an attribute name, found ${this.describeNext()}`);
    }
    this.position++;
    return t.text;
  }

  private keyword(word: string): boolean {
    const t = this.tokens[this.position];
    if (t?.kind === 'word' && t.text.toLowerCase() === word) {
      this.position++;
      return true;
    }
    return false;
  }

  private peek(kind: '(' | ')' | '[' | ']'): boolean {
    return this.tokens[this.position]?.kind === kind;
  }

  private expect(kind: '(' | ')' | '[' | ']'): void {
    if (!this.peek(kind)) throw invalidFilter(`expected '${kind}', found ${this.describeNext()}`);
    this.position++;
  }
}
