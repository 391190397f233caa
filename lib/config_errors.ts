/**
 * zod issues -> tunekit's one-line config problems ("peft.r: expected a number > 0 but received
 * number 0"). Shared by the training config (lib/train/config.ts) and every PEFT method's schema
 * (lib/peft/<method>/config.ts), so a bad field gets the same words from a YAML file and from
 * `new LoraModel(model, {...})`.
 *
 * @example
 * const cfg = parseConfigOrThrow(LoraSchema, { r: 0 }, 'LoRA config');
 * // TunekitError ERR_CONFIG: Invalid LoRA config (1 problem):
 * //   - r: expected a number > 0 but received number 0
 */
import type { z } from 'zod';
import { TunekitError, describe } from './errors.js';

export type ConfigIssue = z.core.$ZodIssue & { input?: unknown };

function pathString(path: ReadonlyArray<PropertyKey>): string {
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else s += (s ? '.' : '') + String(p);
  }
  return s || '(top level)';
}

/**
 * A value as "but received ..." shows it: typed primitives, lists, and plain mappings as short
 * JSON (describe() would name only their class).
 * @example showValue({ loftq_bits: 4 }) // '{"loftq_bits":4}'
 */
export function showValue(v: unknown): string {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype) {
    const s = JSON.stringify(v);
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
  }
  return describe(v);
}

/**
 * "but received ..." for a value: its type and the value.
 * @example receivedText('some') // 'string "some"'
 */
export function receivedText(v: unknown): string {
  if (v === undefined) return 'nothing (the field is required)';
  if (v === null) return 'null';
  return `${Array.isArray(v) ? 'array' : typeof v} ${showValue(v)}`;
}

function received(issue: ConfigIssue): string {
  if (!('input' in issue) || issue.input === undefined) return 'nothing (the field is required)';
  const v = issue.input;
  const t = Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v;
  return t === 'object' ? 'object' : `${t} ${describe(v)}`;
}

const TYPE_NAMES: Record<string, string> = {
  int: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'a boolean (true or false)',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
  null: 'null',
};
const typeName = (t: string): string => TYPE_NAMES[t] ?? t;

/**
 * One line per problem, each naming the field (prefixed by `prefix`, e.g. ['peft']), what was
 * expected and what was received. Parse with `{ reportInput: true }` so the received values are known.
 */
export function issueLines(issues: readonly ConfigIssue[], prefix: PropertyKey[] = []): string[] {
  const out: string[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const k of issue.keys) out.push(`${pathString([...path, k])}: unknown field (check the spelling) with value ${showValue((issue.input as Record<string, unknown> | undefined)?.[k])}`);
        break;
      case 'invalid_type':
        out.push(`${pathString(path)}: expected ${typeName(issue.expected)} but received ${received(issue)}`);
        break;
      case 'invalid_value':
        out.push(`${pathString(path)}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(' | ')} but received ${received(issue)}`);
        break;
      case 'too_small':
      case 'too_big': {
        const small = issue.code === 'too_small';
        const bound = small ? issue.minimum : issue.maximum;
        const op = small ? (issue.inclusive ? '>=' : '>') : issue.inclusive ? '<=' : '<';
        const what = issue.origin === 'number' || issue.origin === 'int' ? 'a number' : `${issue.origin} length`;
        out.push(`${pathString(path)}: expected ${what} ${op} ${String(bound)} but received ${received(issue)}`);
        break;
      }
      case 'invalid_union': {
        const expected = issue.errors
          .map((branch) => branch.find((b) => b.path.length === 0 && b.code === 'invalid_type'))
          .map((b) => (b && b.code === 'invalid_type' ? b.expected : undefined))
          .filter((x): x is NonNullable<typeof x> => x !== undefined);
        if (expected.length === issue.errors.length) {
          out.push(`${pathString(path)}: expected ${[...new Set(expected)].map(typeName).join(' or ')} but received ${received(issue)}`);
        } else {
          // A branch matched the type but failed inside: report the closest branch's issues.
          const best = issue.errors.reduce((a, b) => (a.length <= b.length ? a : b));
          out.push(...issueLines(best as ConfigIssue[], path));
        }
        break;
      }
      case 'invalid_format':
        out.push(`${pathString(path)}: ${issue.message} but received ${received(issue)}`);
        break;
      default:
        out.push(`${pathString(path)}: ${issue.message}${issue.code !== 'custom' && 'input' in issue ? ` but received ${received(issue)}` : ''}`);
    }
  }
  return out;
}

/** A custom zod issue in the same words: "expected X but received <value>". */
export function expectedIssue(expected: string, input: unknown, path: PropertyKey[] = []): { code: 'custom'; message: string; path: PropertyKey[]; input: unknown } {
  return { code: 'custom', message: `expected ${expected} but received ${receivedText(input)}`, path, input };
}

/** ERR_CONFIG listing every problem, one per line. */
export function configProblemsError(what: string, lines: readonly string[]): TunekitError {
  const n = lines.length;
  return new TunekitError('ERR_CONFIG', `Invalid ${what} (${n} problem${n === 1 ? '' : 's'}):\n${lines.map((l) => `  - ${l}`).join('\n')}`);
}

/**
 * Parses `value` with `schema` (defaults filled) or throws one ERR_CONFIG listing every problem.
 * @example parseConfigOrThrow(AdaloraSchema, { init_r: 4, target_r: 8 }, 'AdaLoRA config')
 */
export function parseConfigOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value ?? {}, { reportInput: true });
  if (!r.success) throw configProblemsError(what, issueLines(r.error.issues as ConfigIssue[]));
  return r.data;
}
