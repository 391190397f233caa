/**
 * Prompt tuning, P-tuning and prefix tuning on the tiny fixture models: output shapes and masks
 * (virtual positions sliced off, padding invariance), disabled adapters = the base model, the
 * MLP and LSTM encoders' gradients against finite differences, initialisation rules
 * (SAMPLE_VOCAB, TEXT repeat/cut), save/load round trips, generation (KV cache) equal to the
 * plain forward pass, and a short Trainer run per method that lowers the loss with the base frozen.
 */
import { describe, it, expect, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { noGrad, backward } from '../../lib/autograd/tape.js';
import * as F from '../../lib/autograd/ops.js';
import { tidy } from '../../lib/tensor/scope.js';
import { randn } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { manualSeed } from '../../lib/nn/random.js';
import { generate } from '../../lib/models/generate.js';
import { peftMethodFor } from '../../lib/peft/base/registry.js';
import { PromptTuningModel, initTokenIds } from '../../lib/peft/prompt_tuning/index.js';
import { PTuningModel, PTuningEncoder, type PTuningConfig } from '../../lib/peft/p_tuning/index.js';
import { PrefixTuningModel } from '../../lib/peft/prefix_tuning/index.js';
import type { PromptLearningModel } from '../../lib/peft/prompt/prompt_model.js';
import { Trainer, type TrainExample } from '../../lib/train/trainer.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { dir as modelDir, ids2d } from '../models/helpers.js';
import { baseModel } from './prompt_helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-prompt-m-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const METHODS: [string, string, Record<string, unknown>][] = [
  ['prompt tuning', 'prompt_tuning', { num_virtual_tokens: 4 }],
  ['P-tuning MLP', 'p_tuning', { num_virtual_tokens: 4, encoder_hidden_size: 16 }],
  ['P-tuning LSTM', 'p_tuning', { num_virtual_tokens: 3, encoder_hidden_size: 8, encoder_reparameterization_type: 'LSTM' }],
  ['prefix tuning', 'prefix_tuning', { num_virtual_tokens: 4 }],
  ['prefix tuning + projection', 'prefix_tuning', { num_virtual_tokens: 3, prefix_projection: true, encoder_hidden_size: 16 }],
];

const make = (method: string, cfg: Record<string, unknown>, base = 'gpt2_lm', seed = 3) => {
  manualSeed(seed);
  const m = peftMethodFor(method).create(baseModel(base), cfg, 'default') as PromptLearningModel;
  m.eval();
  return m;
};
const arr = (t: Tensor) => Array.from(t.data() as Float32Array);
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe('shapes, masks and disabling', () => {
  for (const [label, method, cfg] of METHODS) {
    it(`${label}: real-token outputs, padding invariance, trainable = encoder only`, () => {
      const m = make(method, cfg);
      const ids = ids2d([[5, 17, 33, 2, 96], [9, 3, 71, 0, 0]]);
      const mask = ids2d([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]);
      const out = noGrad(() => m.forward({ inputIds: ids, attentionMask: mask }));
      expect(out.logits.shape).toEqual([2, 5, 97]);
      expect(out.hidden.shape).toEqual([2, 5, 48]);
      // the padded row's real tokens equal the same row run alone without padding
      const alone = noGrad(() => m.forward({ inputIds: ids2d([[9, 3, 71]]), attentionMask: ids2d([[1, 1, 1]]) })).logits.data() as Float32Array;
      const padded = out.logits.data() as Float32Array;
      expect(maxDiff(padded.subarray(5 * 97, 8 * 97), alone)).toBeLessThan(1e-5);
      // only the prompt encoder trains
      const trainable = m.trainableParameters().map(([n]) => n);
      expect(trainable.length).toBeGreaterThan(0);
      expect(trainable.every((n) => n.startsWith('prompt_encoder.'))).toBe(true);
      // disabled = the base model; enabled differs
      const base = noGrad(() => m.base.forward({ inputIds: ids, attentionMask: mask })).logits;
      const off = noGrad(() => m.withAdaptersDisabled(() => m.forward({ inputIds: ids, attentionMask: mask }))).logits;
      expect(maxDiff(arr(off), arr(base))).toBe(0);
      expect(maxDiff(arr(out.logits), arr(base))).toBeGreaterThan(1e-3);
    });
  }

  it('sequence classification: per-sequence logits, the head trains and is saved', () => {
    manualSeed(1);
    const { model } = loadPretrainedSync(modelDir('gpt2_seqcls'), { task: 'seq_cls' });
    const m = new PromptTuningModel(model, { num_virtual_tokens: 3 });
    const out = noGrad(() => m.forward({ inputIds: ids2d([[5, 6, 7], [8, 9, 0]]), attentionMask: ids2d([[1, 1, 1], [1, 1, 0]]) }));
    expect(out.logits.shape).toEqual([2, model.config.numLabels]);
    expect(m.trainableParameters().map(([n]) => n)).toContain('base_model.score.weight');
    const d = path.join(tmp, 'seqcls');
    m.saveAdapterSync(d);
    const cfg = JSON.parse(fs.readFileSync(path.join(d, 'adapter_config.json'), 'utf8'));
    expect(cfg.task_type).toBe('SEQ_CLS');
    const back = PromptTuningModel.fromPretrainedSync(loadPretrainedSync(modelDir('gpt2_seqcls'), { task: 'seq_cls' }).model, d);
    const again = noGrad(() => back.forward({ inputIds: ids2d([[5, 6, 7], [8, 9, 0]]), attentionMask: ids2d([[1, 1, 1], [1, 1, 0]]) }));
    expect(maxDiff(arr(again.logits), arr(out.logits))).toBeLessThan(1e-6);
  });

  it('refuses configs that do not fit the model, with what was expected', () => {
    expect(() => make('prompt_tuning', { num_virtual_tokens: 0 })).toThrow(/num_virtual_tokens: expected a number > 0 but received number 0/);
    expect(() => make('prompt_tuning', { num_virtual_tokens: 2, token_dim: 50 })).toThrow(/48 wide/);
    expect(() => make('p_tuning', { num_virtual_tokens: 2, encoder_reparameterization_type: 'GRU' })).toThrow(/encoder_reparameterization_type: expected one of "MLP" \| "LSTM" but received string "GRU"/);
    expect(() => make('prefix_tuning', { num_virtual_tokens: 2, num_layers: 5 })).toThrow(/2 layers/);
    const m = make('prompt_tuning', { num_virtual_tokens: 2 });
    expect(() => m.loadAdapterWeightsSync(path.join(modelDir('gpt2_lm')))).toThrow(/adapter_config/);
  });
});

describe('encoder gradients against finite differences (f32, central, h = 5e-3)', () => {
  for (const type of ['MLP', 'LSTM'] as const) {
    it(`P-tuning ${type} encoder`, () => {
      manualSeed(11);
      const cfg = { num_virtual_tokens: 3, token_dim: 6, encoder_hidden_size: 4, encoder_reparameterization_type: type, encoder_num_layers: 2, encoder_dropout: 0 } as PTuningConfig;
      const enc = new PTuningEncoder(cfg);
      enc.eval();
      const R = randn([3, 6], { seed: 5 });
      const loss = () => F.sum(F.mul(enc.forward(), R));
      tidy(() => backward(loss()));
      const h = 5e-3;
      let checked = 0;
      for (const [name, p] of enc.namedParameters()) {
        const g = p.grad!.data() as Float32Array;
        const w = p.data() as Float32Array;
        // every entry of small tensors, a strided sample of the larger ones
        const step = Math.max(1, Math.floor(w.length / 24));
        for (let i = 0; i < w.length; i += step) {
          const keep = w[i]!;
          w[i] = keep + h;
          const lp = noGrad(() => tidy(() => loss().item()));
          w[i] = keep - h;
          const lm = noGrad(() => tidy(() => loss().item()));
          w[i] = keep;
          const num = (lp - lm) / (2 * h);
          expect(Math.abs(num - g[i]!), `${name}[${i}] numeric ${num} vs ${g[i]}`).toBeLessThan(2e-3 + 2e-2 * Math.abs(num));
          checked++;
        }
      }
      expect(checked).toBeGreaterThan(type === 'LSTM' ? 300 : 80);
    });
  }
});

describe('prompt tuning initialisation', () => {
  it('SAMPLE_VOCAB takes rows of the token table, repeatably for a seed', () => {
    const base = baseModel('gpt2_lm');
    const a = new PromptTuningModel(base, { num_virtual_tokens: 5, prompt_tuning_init: 'SAMPLE_VOCAB' }, 'default', { seed: 42 });
    const b = new PromptTuningModel(baseModel('gpt2_lm'), { num_virtual_tokens: 5, prompt_tuning_init: 'SAMPLE_VOCAB' }, 'default', { seed: 42 });
    const pa = arr(a.prompt()), pb = arr(b.prompt());
    expect(pa).toEqual(pb);
    const table = base.tokenEmbeddings().data() as Float32Array;
    const C = 48, V = 97;
    for (let r = 0; r < 5; r++) {
      const row = pa.slice(r * C, (r + 1) * C);
      const hit = Array.from({ length: V }, (_, v) => v).some((v) => maxDiff(table.subarray(v * C, (v + 1) * C), row) === 0);
      expect(hit).toBe(true);
    }
  });
  it("TEXT uses the text's token rows, repeated or cut to num_virtual_tokens (PEFT's rule)", () => {
    expect(initTokenIds([5, 6, 7], 7)).toEqual([5, 6, 7, 5, 6, 7, 5]);
    expect(initTokenIds([5, 6, 7], 2)).toEqual([5, 6]);
    const base = baseModel('gpt2_lm');
    const tokenizer = { encode: (t: string) => ({ ids: t.split(' ').map((w) => w.length + 10) }) };
    const m = new PromptTuningModel(base, { num_virtual_tokens: 4, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'ab abc' }, 'default', { tokenizer });
    const table = base.tokenEmbeddings().data() as Float32Array;
    const want = [12, 13, 12, 13].flatMap((id) => Array.from(table.subarray(id * 48, (id + 1) * 48)));
    expect(arr(m.prompt())).toEqual(want);
    expect(m.adapterConfigs.get('default')!.tokenizer).toBeUndefined();
    expect(() => new PromptTuningModel(base, { num_virtual_tokens: 4, prompt_tuning_init: 'TEXT' })).toThrow(/prompt_tuning_init_text/);
  });
  it('RANDOM is N(0, 1) like torch.nn.Embedding', () => {
    const m = make('prompt_tuning', { num_virtual_tokens: 64 });
    const v = arr(m.prompt());
    const mean = v.reduce((a, b) => a + b) / v.length;
    const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    expect(Math.abs(mean)).toBeLessThan(0.1);
    expect(Math.abs(sd - 1)).toBeLessThan(0.1);
  });
});

describe('save / load round trip', () => {
  for (const [label, method, cfg] of METHODS) {
    it(`${label}: saved = the encoder output; reloaded logits equal`, () => {
      const m = make(method, cfg);
      const ids = ids2d([[5, 17, 33, 2]]);
      const want = arr(noGrad(() => m.forward({ inputIds: ids })).logits);
      const d = path.join(tmp, `rt-${label.replace(/\W+/g, '_')}`);
      m.saveAdapterSync(d);
      const back = method === 'prompt_tuning' ? PromptTuningModel.fromPretrainedSync(baseModel('gpt2_lm'), d)
        : method === 'p_tuning' ? PTuningModel.fromPretrainedSync(baseModel('gpt2_lm'), d) : PrefixTuningModel.fromPretrainedSync(baseModel('gpt2_lm'), d);
      expect(maxDiff(arr(back.prompt()), arr(noGrad(() => m.prompt())))).toBe(0);
      expect(maxDiff(arr(noGrad(() => back.forward({ inputIds: ids })).logits), want)).toBeLessThan(1e-6);
      // the loaded table stays trainable
      expect(back.trainableParameters().map(([n]) => n)).toEqual(['prompt_encoder.weight']);
      expect(back.adapterConfigs.get('default')).toMatchObject({ peft_type: method.toUpperCase(), inference_mode: false });
    });
  }
  it('refuses a folder of another method or with a wrong shape', () => {
    const d = path.join(tmp, 'rt-wrong');
    make('prefix_tuning', { num_virtual_tokens: 4 }).saveAdapterSync(d);
    expect(() => PromptTuningModel.fromPretrainedSync(baseModel('gpt2_lm'), d)).toThrow(/PREFIX_TUNING adapter, not PROMPT_TUNING/);
    const m = make('prefix_tuning', { num_virtual_tokens: 5 });
    expect(() => m.loadAdapterWeightsSync(d)).toThrow(/expects \[5, 192\]/);
  });
});

describe('generation with the KV cache equals the plain forward pass', () => {
  const cases: [string, string, string, Record<string, unknown>][] = [
    ['prefix tuning, gpt2', 'gpt2_lm', 'prefix_tuning', { num_virtual_tokens: 4 }],
    ['prefix tuning, llama', 'llama_lm', 'prefix_tuning', { num_virtual_tokens: 4 }],
    ['prompt tuning, gpt2', 'gpt2_lm', 'prompt_tuning', { num_virtual_tokens: 4 }],
    ['P-tuning LSTM, llama', 'llama_lm', 'p_tuning', { num_virtual_tokens: 3, encoder_hidden_size: 8, encoder_reparameterization_type: 'LSTM' }],
  ];
  for (const [label, base, method, cfg] of cases) {
    it(label, async () => {
      const m = make(method, cfg, base);
      const prompts = [[5, 17, 33, 2], [9, 3]];
      const { sequences } = await generate(m, prompts, { maxNewTokens: 6, eosTokenId: null });
      for (let r = 0; r < prompts.length; r++) {
        // greedy, step by step, with no cache: argmax of the last position each time
        const seq = [...prompts[r]!];
        for (let s = 0; s < 6; s++) {
          const logits = noGrad(() => m.forward({ inputIds: ids2d([seq]) })).logits.data() as Float32Array;
          const last = logits.subarray((seq.length - 1) * 97, seq.length * 97);
          let best = 0;
          for (let v = 1; v < 97; v++) if (last[v]! > last[best]!) best = v;
          seq.push(best);
        }
        expect(sequences[r]).toEqual(seq.slice(prompts[r]!.length));
      }
    });
  }
});

/** Sequences of a learnable pattern: t, t+1, t+2, ... */
function lmData(n: number, seed = 1): TrainExample[] {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  return Array.from({ length: n }, () => {
    const start = Math.floor(rnd() * 90);
    const ids = Array.from({ length: 6 }, (_, i) => ((start + i) % 96) + 1);
    return { inputIds: ids, labels: ids };
  });
}

describe('a short training run lowers the loss (base frozen)', () => {
  for (const [label, method, cfg] of METHODS) {
    it(label, async () => {
      const m = make(method, cfg);
      m.train();
      const before = new Map(m.base.namedParameters().map(([n, p]) => [n, arr(p)]));
      const losses: number[] = [];
      await new Trainer({
        model: m, task: 'causal_lm', train: lmData(16), padTokenId: 0, progress: 'none',
        settings: { maxSteps: 12, batchSize: 8, lr: 3e-2, logEvery: 1, maxGradNorm: 1, schedule: 'constant' as never },
        callbacks: { onStep: (i) => losses.push(i.loss) },
      }).fit();
      const head = (losses[0]! + losses[1]!) / 2, tail = (losses.at(-1)! + losses.at(-2)!) / 2;
      expect(tail, `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`).toBeLessThan(head * 0.97);
      for (const [n, p] of m.base.namedParameters()) expect(maxDiff(arr(p), before.get(n)!), n).toBe(0);
    });
  }
});

describe('training configs reach the methods through wrapForMethod', () => {
  for (const [method, peft] of [['prompt_tuning', { num_virtual_tokens: 5 }], ['p_tuning', { num_virtual_tokens: 5, encoder_reparameterization_type: 'LSTM', encoder_hidden_size: 8 }], ['prefix_tuning', { num_virtual_tokens: 5, prefix_projection: true, encoder_hidden_size: 8 }]] as const) {
    it(method, async () => {
      const { loadConfig } = await import('../../lib/train/config.js');
      const { wrapForMethod } = await import('../../lib/train/run_model.js');
      const cfg = loadConfig({ model: modelDir('gpt2_lm'), method, peft, dataset: { path: 'x.jsonl' } } as Record<string, unknown>);
      const m = (await wrapForMethod(baseModel('gpt2_lm'), cfg)) as PromptLearningModel;
      expect(m.adapterConfigs.get('default')).toMatchObject({ peft_type: method.toUpperCase(), num_virtual_tokens: 5, token_dim: 48 });
      expect(noGrad(() => m.forward({ inputIds: ids2d([[1, 2, 3]]) })).logits.shape).toEqual([1, 3, 97]);
    });
  }
});
