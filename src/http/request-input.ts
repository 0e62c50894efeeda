import type { Request } from 'express';
import { isStorableText, MAX_JSON_DEPTH } from '../core/limits.ts';

/**
 * Input no route of an API can take, found once after the body is parsed and before any handler
 * walks it (a recursive walk of a body nested 10,000 deep overflows the stack) or sends it to
 * PostgreSQL (which holds no NUL character and no half of a surrogate pair). Each API answers
 * the problem in its own error shape.
 */
export type InputProblem =
  | { kind: 'too_deep'; message: string }
  /** `parameter` names the query parameter holding it, when it is in the query string. */
  | { kind: 'unstorable_text'; message: string; parameter?: string };

const UNSTORABLE = 'a NUL character or invalid Unicode (a lone surrogate)';

export function inputProblem(req: Request): InputProblem | null {
  // A NUL can reach the path only percent-encoded; express decodes route parameters.
  if (/%00/i.test(req.originalUrl.split('?', 1)[0]!))
    return { kind: 'unstorable_text', message: 'the path contains a NUL character' };
  for (const [parameter, value] of Object.entries(req.query)) {
    // The query parser (app.ts) nests nothing: strings, and arrays of them for repeated names.
    if (!isStorableText(parameter) || walk(value, Infinity) !== null)
      return { kind: 'unstorable_text', message: `query parameter '${parameter}' contains ${UNSTORABLE}`, parameter };
  }
  switch (walk(req.body, MAX_JSON_DEPTH)) {
    case 'too_deep':
      return { kind: 'too_deep', message: `the body is nested deeper than ${MAX_JSON_DEPTH} levels` };
    case 'unstorable_text':
      return { kind: 'unstorable_text', message: `the body contains ${UNSTORABLE}` };
    default:
      return null;
  }
}

/** The first problem of a parsed value (strings, keys, nesting), without recursion. */
function walk(value: unknown, maxDepth: number): 'too_deep' | 'unstorable_text' | null {
  const pending: [unknown, number][] = [[value, 0]];
  while (pending.length > 0) {
    const [item, depth] = pending.pop()!;
    if (typeof item === 'string') {
      if (!isStorableText(item)) return 'unstorable_text';
    } else if (typeof item === 'object' && item !== null) {
      if (depth >= maxDepth) return 'too_deep';
      const array = Array.isArray(item);
      for (const [key, inner] of Object.entries(item)) {
        if (!array && !isStorableText(key)) return 'unstorable_text';
        pending.push([inner, depth + 1]);
      }
    }
  }
  return null;
}
