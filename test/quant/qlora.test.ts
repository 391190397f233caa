/**
 * QLoRA end to end on the tiny transformers fixtures: quantizeModel (bytes, skipped heads),
 * LoRA over NF4 layers (only adapters train, the loss drops), NF4 checkpoints in bitsandbytes'
 * layout (the Python-written fixture loads and reproduces transformers' logits; our files round
 * trip), and merging into a dense model with its error report.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { backward, noGrad } from '../../lib/autograd/tape.js';
import * as F from '../../lib/autograd/ops.js';
import { tidy } from '../../lib/tensor/scope.js';
import { tensor } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { manualSeed } from '../../lib/nn/random.js';
import { AdamW } from '../../lib/train/optimizer.js';
import { Linear } from '../../lib/nn/layers.js';
import type { PretrainedModel } from '../../lib/models/common.js';
import { wrapForMethod } from '../../lib/train/run_model.js';
import type { TrainConfig } from '../../lib/train/config.js';
import { dir, inputsOf, modelInputs } from '../models/helpers.js';
import { NF4Linear } from '../../lib/quant/nf4_linear.js';
import { quantizeModelSync } from '../../lib/quant/quantize.js';
import { saveNf4PretrainedSync, loadNf4PretrainedSync, isNf4CheckpointSync } from '../../lib/quant/checkpoint.js';
import { mergeQlora } from '../../lib/peft/qlora/merge.js';
import { relativeError } from '../../lib/tensor/nf4.js';

const NF4_FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'nf4', 'gpt2_nf4');
const dirs: string[] = [];
afterEach(() => { while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true }); });
const newDir = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-qlora-')); dirs.push(d); return d; };

const logits = (m: LoraModel | PretrainedModel, fixture = 'gpt2_lm') =>
  noGrad(() => tidy(() => m.forward(modelInputs(inputsOf(fixture))).logits.toTypedArray() as Float32Array));
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => { let d = 0; for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!)); return d; };

function lmLoss(m: LoraModel): Tensor {
  const inp = inputsOf('gpt2_lm');
  const out = m.forward(modelInputs(inp));
  const C = out.logits.shape.at(-1)!;
  const labels = Int32Array.from(inp.input_ids.flat().map((_, i, a) => (i % 10 === 9 ? -100 : a[i + 1]!)));
  return F.crossEntropy(F.reshape(out.logits, [-1, C]), tensor(labels, [labels.length], 'i32') as Tensor<'i32'>);
}

describe('quantizeModel', () => {
  it('replaces the Conv1D / Linear layers, keeps heads and embeddings dense, <= 0.52 bytes per quantized parameter', () => {
    const { model } = loadPretrainedSync(dir('gpt2_seqcls'), { task: 'seq_cls' });
    const rep = quantizeModelSync(model);
    expect(rep.quantized).toHaveLength(8); // 2 layers x (c_attn, attn.c_proj, c_fc, mlp.c_proj)
    expect(rep.quantized.some((p) => p.startsWith('score'))).toBe(false);
    expect(rep.bytesPerParam).toBeLessThanOrEqual(0.52);
    expect(rep.bytesAfter).toBeLessThan(rep.bytesBefore);
    expect(rep.weightBytesBefore - rep.weightBytesAfter).toBe(rep.bytesBefore - rep.bytesAfter);
    const mods = new Map(model.namedModules());
    expect(mods.get('transformer.h.0.attn.c_attn')).toBeInstanceOf(NF4Linear);
    expect(mods.get('score')).toBeInstanceOf(Linear);
  });
});

describe('QLoRA (LoRA over NF4 layers)', () => {
  it('trains only the adapters and the loss drops on the tiny GPT-2', async () => {
    manualSeed(7);
    const { model: base } = loadPretrainedSync(dir('gpt2_lm'));
    const cfg = { method: 'qlora', quantization: 'nf4', peft: { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: 'all-linear', blocksize: 64, double_quant: true } } as unknown as TrainConfig;
    const lora = (await wrapForMethod(base, cfg)) as LoraModel;
    expect([...lora.layers.values()].every((l) => l.base_layer instanceof NF4Linear)).toBe(true);
    expect(lora.layers.size).toBe(8);
    const trainable = lora.trainableParameters().map(([n]) => n);
    expect(trainable.every((n) => /lora_[AB]/.test(n))).toBe(true);
    lora.train();
    const opt = new AdamW(lora.trainableParameters(), { lr: 1e-2 });
    const losses: number[] = [];
    for (let s = 0; s < 12; s++) {
      tidy(() => {
        const l = lmLoss(lora);
        losses.push(l.item());
        backward(l);
      });
      opt.step();
      for (const [, p] of opt.params) { p.grad?.dispose(); p.grad = null; }
    }
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.8);
    // NF4 weights never got a gradient
    for (const l of lora.layers.values()) expect((l.base_layer as NF4Linear).weight.grad ?? null).toBeNull();
  });
});

describe('NF4 checkpoints (transformers + bitsandbytes layout)', () => {
  it('loads the Python-written 4-bit GPT-2 and reproduces transformers on the dequantized weights', () => {
    expect(isNf4CheckpointSync(NF4_FIX)).toBe(true);
    const { model, report } = loadNf4PretrainedSync(NF4_FIX);
    expect(report.quantized).toHaveLength(8);
    expect(report.unused).toEqual([]);
    const want = JSON.parse(fs.readFileSync(path.join(NF4_FIX, 'expected.json'), 'utf8')) as { logits: number[] };
    const got = logits(model);
    // compare the real tokens' rows (padded query rows depend on the attention implementation)
    const mask = inputsOf('gpt2_lm').attention_mask.flat();
    const V = got.length / mask.length;
    const keep = (a: ArrayLike<number>) => Array.from(a).filter((_, i) => mask[Math.floor(i / V)] === 1);
    expect(maxDiff(keep(got), keep(want.logits))).toBeLessThan(1e-4);
  });

  it('round trips: our saved files are byte-identical for the NF4 keys and load back to the same logits', async () => {
    const { model } = loadNf4PretrainedSync(NF4_FIX);
    const out = newDir();
    saveNf4PretrainedSync(model, out);
    const { openCheckpointSync } = await import('../../lib/io/safetensors.js');
    const a = openCheckpointSync(NF4_FIX), b = openCheckpointSync(out);
    expect([...b.names].sort()).toEqual([...a.names].sort());
    for (const k of a.names) {
      const ra = a.readTensor(k), rb = b.readTensor(k);
      expect(rb.dtype, k).toBe(ra.dtype);
      expect(rb.shape, k).toEqual(ra.shape);
      expect(Buffer.from(rb.bytes).equals(Buffer.from(ra.bytes)), k).toBe(true);
    }
    a.close(); b.close();
    const { model: back } = loadNf4PretrainedSync(out);
    expect(maxDiff(logits(back), logits(model))).toBe(0);
  });
});

describe('merging a QLoRA adapter', () => {
  it('writes dense weights = dequant(W) + s B A, reports the base error against the dense weights and the requantization error', () => {
    manualSeed(9);
    const { model: base } = loadPretrainedSync(dir('gpt2_lm'));
    const rep = quantizeModelSync(base, { keepDense: true });
    const lora = new LoraModel(base, { r: 4, lora_alpha: 8, init_lora_weights: false, target_modules: ['c_attn', 'c_fc'] });
    const before = logits(lora);
    const path0 = 'transformer.h.0.attn.c_attn';
    const nl = lora.layers.get(path0)!.base_layer as NF4Linear;
    const deq = nl.dequantize('source');
    const expectErr = relativeError(rep.dense!.get(path0)!.weight, deq).rel;
    const { model, report } = mergeQlora(lora, { reference: rep.dense, requantize: false });
    expect(report.layers).toHaveLength(4);
    expect(report.layers[0]!.path).toBe(path0);
    expect(report.layers[0]!.baseError).toBeCloseTo(expectErr, 10);
    expect(report.baseError).toBeGreaterThan(0.05);
    expect(report.baseError).toBeLessThan(0.12);
    const mods = new Map(model.namedModules());
    const merged = mods.get(path0) as Linear;
    expect(merged).toBeInstanceOf(Linear);
    expect(merged.layout).toBe('in_out');
    // the merged dense model computes what the NF4 base + adapter computed
    expect(maxDiff(logits(model), before)).toBeLessThan(1e-4);
    // a LoRA layer over NF4 refuses the in-place merge with a pointer to mergeQlora
    const { model: b2 } = loadPretrainedSync(dir('gpt2_lm'));
    quantizeModelSync(b2);
    const l2 = new LoraModel(b2, { r: 2, target_modules: ['c_attn'] });
    expect(() => l2.merge()).toThrow(/mergeQlora/);
  });

  it('requantize: the merged model is NF4 again and the added error is reported', () => {
    manualSeed(10);
    const { model: base } = loadPretrainedSync(dir('gpt2_lm'));
    quantizeModelSync(base);
    const lora = new LoraModel(base, { r: 4, lora_alpha: 8, init_lora_weights: false, target_modules: ['c_attn'] });
    const { model, report } = mergeQlora(lora, { requantize: true });
    expect(report.hasReference).toBe(false);
    expect(report.requantError!).toBeGreaterThan(0.02);
    expect(report.requantError!).toBeLessThan(0.15);
    expect(new Map(model.namedModules()).get('transformer.h.1.attn.c_attn')).toBeInstanceOf(NF4Linear);
  });
});
