/**
 * The README's TypeScript examples are run as written (imports of 'tunekit' point at lib/), so
 * the README cannot drift from the API. The quick start's training settings are shrunk to a few
 * steps (the substitutions are listed below) so the test stays fast.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';

const root = resolve(__dirname, '../..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** The ```ts block that follows the first line matching `after`. */
function block(after: RegExp): string {
  const at = readme.search(after);
  expect(at, `README section ${after}`).toBeGreaterThanOrEqual(0);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  expect(m, `a ts block after ${after}`).not.toBeNull();
  return m![1]!;
}

async function run(code: string): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tunekit-readme-'));
  const file = join(dir, 'example.ts');
  const lib = pathToFileURL(join(root, 'lib', 'index.ts')).href;
  const logs: string[] = [];
  const src = code.replace(/from 'tunekit'/g, `from '${lib}'`).replace(/console\.log\(/g, 'globalThis.__readmeLog(');
  (globalThis as Record<string, unknown>).__readmeLog = (...a: unknown[]) => logs.push(a.map(String).join(' '));
  writeFileSync(file, src);
  await import(pathToFileURL(file).href);
  return logs;
}

describe('README examples', () => {
  it('tensors and autograd', async () => {
    const logs = await run(block(/^Lower level, tensors and autograd/m));
    expect(logs[0]).toMatch(/^Tensor\(f32, \[3, 2\]\)/);
  });

  const hasBase = existsSync(join(root, 'models', 'tunekit-gpt2-small', 'config.json'));
  it.runIf(hasBase)('quick start (LoRA on the built-in base, shrunk to 2 steps)', async () => {
    let code = block(/^## Quick start in TypeScript/m);
    const out = mkdtempSync(join(tmpdir(), 'tunekit-readme-run-'));
    const subs: [string, string][] = [
      ['settings: { epochs: 1, batchSize: 16, lr: 2e-3 }', "settings: { maxSteps: 2, batchSize: 4, lr: 2e-3 }, progress: 'none'"],
      // the Tokenizer itself goes to the data builders (one TokenizerLike, no adapter object)
      ['data.buildClassificationExamples(train, tok,', 'data.buildClassificationExamples(train.slice(0, 16), tok,'],
      ['data.buildClassificationExamples(held, tok,', 'data.buildClassificationExamples(held.slice(0, 8), tok,'],
      ["'runs/my-spam'", JSON.stringify(out)],
      ["'runs/my-spam/adapter'", JSON.stringify(join(out, 'adapter'))],
    ];
    for (const [a, b] of subs) {
      expect(code.includes(a), `README quick start still contains: ${a}`).toBe(true);
      code = code.replace(a, b);
    }
    const logs = await run(code);
    expect(Number(logs.at(-1))).toBeGreaterThanOrEqual(0);
    expect(existsSync(join(out, 'adapter', 'adapter_config.json'))).toBe(true);
  });
});
