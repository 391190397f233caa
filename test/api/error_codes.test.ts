/**
 * TunekitError.code is typed as TunekitErrorCode. The compiler checks the TypeScript side (the
 * constructor takes only those codes); this test checks the rest: every ERR_* string in lib/ and
 * native/ (the addon builds its errors from strings in native/core/status.h and native/napi) is a
 * member of the union, and every member is used somewhere.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setNumThreads, TunekitError } from '../../lib/index.js';

const root = resolve(__dirname, '../..');

/** Node's own error codes that lib/ compares against (never thrown by tunekit). */
const NODE_CODES = new Set(['ERR_PARSE_ARGS', 'ERR_MODULE_NOT_FOUND']);

function files(dir: string, ext: RegExp): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && ext.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

function unionMembers(): Set<string> {
  const src = readFileSync(join(root, 'lib', 'errors.ts'), 'utf8');
  const m = /export type TunekitErrorCode =([\s\S]*?);/.exec(src);
  expect(m, 'the TunekitErrorCode union in lib/errors.ts').not.toBeNull();
  return new Set([...m![1]!.matchAll(/'(ERR_[A-Z0-9_]+)'/g)].map((x) => x[1]!));
}

function usedCodes(): Map<string, string> {
  const used = new Map<string, string>(); // code -> first file using it
  const sources = [...files(join(root, 'lib'), /\.ts$/), ...files(join(root, 'native'), /\.(h|cpp|cu|cuh)$/)];
  for (const f of sources) {
    if (f.endsWith(join('lib', 'errors.ts'))) continue;
    for (const [code] of readFileSync(f, 'utf8').matchAll(/\bERR_[A-Z0-9_]+\b/g)) {
      if (NODE_CODES.has(code) || [...NODE_CODES].some((n) => code.startsWith(`${n}_`))) continue;
      if (!used.has(code)) used.set(code, f.slice(root.length + 1));
    }
  }
  return used;
}

describe('TunekitErrorCode', () => {
  it('lists every code used in lib/ and native/', () => {
    const union = unionMembers();
    const missing = [...usedCodes()].filter(([c]) => !union.has(c)).map(([c, f]) => `${c} (${f})`);
    expect(missing, 'codes used but not in TunekitErrorCode').toEqual([]);
  });

  it('has no member that nothing uses', () => {
    const used = usedCodes();
    expect([...unionMembers()].filter((c) => !used.has(c))).toEqual([]);
  });

  it('a native error arrives as a TunekitError with a listed code', () => {
    let err: unknown;
    try {
      setNumThreads(0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TunekitError);
    expect(unionMembers().has((err as TunekitError).code)).toBe(true);
    expect((err as TunekitError).code).toBe('ERR_VALUE');
  });
});
