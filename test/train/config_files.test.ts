/**
 * Hostile and awkward config files: each ends in ERR_CONFIG (or ERR_NOT_FOUND) naming the file
 * and the problem, in bounded time, and never in a raw exception or a hang.
 */
import { describe, expect, test, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig } from '../../lib/train/config.js';
import { TunekitError } from '../../lib/errors.js';

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tk-config-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fails(path: string): TunekitError {
  const t0 = Date.now();
  try {
    loadConfig(path);
  } catch (e) {
    expect(e).toBeInstanceOf(TunekitError);
    expect(Date.now() - t0).toBeLessThan(2000);
    return e as TunekitError;
  }
  throw new Error(`expected ${path} to be refused`);
}

describe('config files', () => {
  test('a JSON config with a duplicate key is refused (JSON.parse would keep the last silently)', () => {
    const p = join(dir, 'dup.json');
    writeFileSync(p, '{"model": "builtin:tunekit-gpt2-small", "dataset": {"path": "a.jsonl"}, "training": {"lr": 0.1, "lr": 0.001}}');
    const e = fails(p);
    expect(e.code).toBe('ERR_CONFIG');
    expect(e.message).toMatch(/Invalid JSON/);
    expect(e.message).toMatch(/unique/i);
  });

  test('a YAML alias bomb ends in ERR_CONFIG at once (was a ReferenceError)', () => {
    const p = join(dir, 'bomb.yaml');
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 10; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill('*' + String.fromCharCode(96 + i)).join(',')}]`);
    lines.push('model: builtin:tunekit-gpt2-small', 'dataset: { path: a.jsonl }');
    writeFileSync(p, lines.join('\n'));
    const e = fails(p);
    expect(e.code).toBe('ERR_CONFIG');
    expect(e.message).toMatch(/alias/i);
  });

  test('a FIFO or a folder given as the config is refused without reading it', () => {
    const fifo = join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    expect(fails(fifo).message).toMatch(/not a regular file/);
    expect(fails(dir).message).toMatch(/not a regular file/);
  });

  test('a config over 1 MiB is refused (a config, not data)', () => {
    const p = join(dir, 'big.yaml');
    writeFileSync(p, `model: builtin:x\n# ${'x'.repeat(1 << 20)}\n`);
    expect(fails(p).message).toMatch(/at most 1048576/);
  });

  test('relative paths resolve against the working directory, not the config file folder', () => {
    const p = join(dir, 'rel.yaml');
    writeFileSync(p, 'model: models/base\ndataset: { path: data/train.jsonl, eval: { path: data/eval.jsonl } }\noutput_dir: runs/x\n');
    const c = loadConfig(p);
    expect(c.model).toBe(resolve('models/base'));
    expect(c.dataset.path).toBe(resolve('data/train.jsonl'));
    expect(c.dataset.eval.path).toBe(resolve('data/eval.jsonl'));
    expect(c.output_dir).toBe(resolve('runs/x'));
    expect(loadConfig({ model: 'builtin:tunekit-gpt2-small', dataset: { path: 'builtin:sotu' } }).dataset.path).toBe('builtin:sotu');
  });
});

describe('flags go through the config schema', () => {
  const base = { model: 'builtin:tunekit-gpt2-small', dataset: { path: 'builtin:sotu' } };
  test('a fractional --max-steps is refused naming the flag and the field', () => {
    try {
      loadConfig(base, { overrides: [{ path: ['training', 'max_steps'], value: '2.5', flag: '--max-steps' }] });
      throw new Error('expected a refusal');
    } catch (e) {
      expect((e as TunekitError).code).toBe('ERR_CONFIG');
      expect((e as Error).message).toMatch(/--max-steps \(training\.max_steps\): expected an integer but received number 2\.5/);
    }
  });
  test('valid flags set their fields; a non-numeric value is refused as a string', () => {
    const c = loadConfig(base, { overrides: [{ path: ['training', 'epochs'], value: '2', flag: '--epochs' }, { path: ['output_dir'], value: 'out', flag: '--output' }] });
    expect(c.training.epochs).toBe(2);
    expect(c.output_dir).toBe(resolve('out'));
    expect(() => loadConfig(base, { overrides: [{ path: ['training', 'epochs'], value: 'two', flag: '--epochs' }] })).toThrow(/--epochs \(training\.epochs\): expected a number but received string "two"/);
  });
});
