/**
 * `tunekit pretrain` (pretrainBase) on a small slice of real text: it writes a complete Hugging
 * Face folder (weights, config, tokenizer with the chat template the built-in base ships, README)
 * that loads back, and the trained model scores its own text better than at initialisation.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../lib/index.js';
import { pretrainBase } from '../../lib/train/pretrain.js';
import { getComputeDtype } from '../../lib/backend.js';
import { mobyDick } from '../../lib/data/builtin.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { resolveModelPath } from '../../lib/models/builtin.js';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

describe('pretrainBase', () => {
  it('writes a loadable folder with the chat template of the shipped base, trained on blocks of contextLength', async () => {
    const out = mkdtempSync(join(tmpdir(), 'tunekit-pretrain-'));
    dirs.push(out);
    const m = mobyDick();
    const r = await pretrainBase({
      outputDir: out, vocabSize: 300, hidden: 32, layers: 1, heads: 2, contextLength: 64, batchSize: 4, steps: 30, lr: 1e-2,
      corpus: { train: m.train.slice(0, 4).map((x) => x.text), eval: m.eval.slice(0, 1).map((x) => x.text), name: 'four chapters of Moby-Dick' },
      log: () => {},
    });
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'README.md']) expect(existsSync(join(out, f)), f).toBe(true);
    // the chat template is the one the built-in base ships (chat records fine-tune on it)
    const cfg = JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8'));
    const shipped = JSON.parse(readFileSync(join(resolveModelPath('builtin:tunekit-gpt2-small'), 'tokenizer_config.json'), 'utf8'));
    expect(cfg.chat_template).toBe(shipped.chat_template);
    expect(r.trainTokens % 64).toBe(0);
    // a uniform guess over the 300-token vocabulary is perplexity 300 (the initialisation is close to it); 30 steps reach ~63
    expect(r.evalPerplexity).toBeLessThan(120);
    const readme = readFileSync(join(out, 'README.md'), 'utf8');
    expect(readme).toContain('four chapters of Moby-Dick');
    expect(readme).toContain('Every position up to 64 was trained');
    const tok = await Tokenizer.fromFolder(out);
    const { model } = loadPretrainedSync(out, { task: 'causal_lm' });
    expect(model.countParameters()).toBe(r.parameters);
    expect(tok.encode('Call me Ishmael.').ids.length).toBeGreaterThan(0);
    model.dispose();
  }, 60_000);

  it('dtype bf16 pretrains with its matrix products in bf16 (the run only), near the f32 run', async () => {
    const m = mobyDick();
    const corpus = { train: m.train.slice(0, 2).map((x) => x.text), eval: m.eval.slice(0, 1).map((x) => x.text), name: 'two chapters of Moby-Dick' };
    const run = async (dtype: 'f32' | 'bf16') => {
      const out = mkdtempSync(join(tmpdir(), 'tunekit-pretrain-'));
      dirs.push(out);
      const r = await pretrainBase({ outputDir: out, vocabSize: 300, hidden: 32, layers: 1, heads: 2, contextLength: 64, batchSize: 4, steps: 8, lr: 1e-2, corpus, dtype, log: () => {} });
      return { r, readme: readFileSync(join(out, 'README.md'), 'utf8') };
    };
    const f32 = await run('f32'), bf16 = await run('bf16');
    expect(getComputeDtype()).toBe('f32');
    expect(bf16.readme).toContain('bf16 matrix products');
    expect(f32.readme).toContain('f32 matrix products');
    expect(bf16.r.evalLoss).not.toBe(f32.r.evalLoss);
    expect(Math.abs(bf16.r.evalLoss - f32.r.evalLoss)).toBeLessThan(0.02 * f32.r.evalLoss);
  }, 60_000);
});
