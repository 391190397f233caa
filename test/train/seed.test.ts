/**
 * training.seed (and `tunekit train --seed`) decides the initialisation of everything a run
 * creates: LoRA's A matrices, a new classification head, prompt embeddings. Before, the seed
 * stream was reseeded only inside the Trainer, after the adapter and head were built, so
 * `--seed 1` and `--seed 2` gave byte-identical initial adapters and heads.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import { GPT2, parseGPT2Config, savePretrainedSync } from '../../lib/models/index.js';
import { trainByteLevelBpe, saveTrainedBpe } from '../../lib/tokenizer/index.js';
import { manualSeed } from '../../lib/nn/random.js';
import { loadConfig } from '../../lib/train/config.js';
import { runTraining } from '../../lib/train/run.js';
import { openSafetensorsSync } from '../../lib/io/safetensors.js';

const DATA = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'fixtures', 'cli', 'tiny_spam.jsonl');
let work = '';

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'tunekit-seed-'));
  const texts = readFileSync(DATA, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { text: string }).text);
  saveTrainedBpe(join(work, 'model'), trainByteLevelBpe(texts, { vocabSize: 300, specialTokens: ['<|endoftext|>'] }), { eosToken: '<|endoftext|>', bosToken: '<|endoftext|>' });
  manualSeed(5);
  const cfg = parseGPT2Config({ model_type: 'gpt2', vocab_size: 300, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 64, eos_token_id: 0, bos_token_id: 0 });
  savePretrainedSync(new GPT2(cfg, 'causal_lm'), join(work, 'model'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The adapter's tensors after a run whose optimizer cannot move them (lr ~ 0): its initial values. */
async function initialAdapter(seed: number, run: string): Promise<Map<string, Float32Array>> {
  const config = loadConfig({
    model: join(work, 'model'), task: 'seq_cls', method: 'lora', peft: { r: 4, lora_alpha: 8, target_modules: ['c_attn'] },
    dataset: { path: DATA, max_length: 16, eval: { fraction: 0.25 } },
    training: { max_steps: 1, batch_size: 4, lr: 1e-30, seed },
    output_dir: join(work, run), logging: { progress: 'none' },
  });
  await runTraining(config, { log: () => {} });
  const r = openSafetensorsSync(join(work, run, 'adapter', 'adapter_model.safetensors'));
  const out = new Map<string, Float32Array>();
  for (const n of r.names) out.set(n, new Float32Array(r.readTensor(n).bytes.slice().buffer));
  r.close();
  return out;
}

describe('training.seed', () => {
  it('changes the initial adapter and head; the same seed repeats them exactly', async () => {
    const a = await initialAdapter(1, 'a');
    const b = await initialAdapter(2, 'b');
    const a2 = await initialAdapter(1, 'a2');
    const keyA = [...a.keys()].find((k) => k.endsWith('lora_A.weight'))!;
    const keyHead = [...a.keys()].find((k) => /score\.weight$/.test(k))!;
    expect(keyA).toBeDefined();
    expect(keyHead).toBeDefined();
    expect(Buffer.from(a.get(keyA)!.buffer).equals(Buffer.from(b.get(keyA)!.buffer))).toBe(false);
    expect(Buffer.from(a.get(keyHead)!.buffer).equals(Buffer.from(b.get(keyHead)!.buffer))).toBe(false);
    for (const [k, v] of a) expect(Buffer.from(v.buffer).equals(Buffer.from(a2.get(k)!.buffer)), k).toBe(true);
  });
});
