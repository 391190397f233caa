/**
 * generate(): greedy ids equal transformers' greedy generate (batched with left padding and one
 * prompt at a time), the KV-cache path gives a full forward's logits, sampling is seeded, stops
 * work, and memory stays flat.
 */
import { describe, it, expect } from 'vitest';
import { loadPretrainedSync, generate, type TokenEvent } from '../../lib/models/index.js';
import { noGrad } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import { native } from '../../lib/native.js';
import { TunekitError } from '../../lib/errors.js';
import type { LayerKV } from '../../lib/models/common.js';
import { dir, expectedOf, ids2d, maxAbsErr } from './helpers.js';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

describe('greedy generation equals transformers', () => {
  for (const name of ['gpt2_lm', 'llama_lm']) {
    it(`${name}: batched (left padding) and single prompts`, async () => {
      const g = expectedOf(name).generate!;
      const { model } = loadPretrainedSync(dir(name));
      const batched = await generate(model, g.prompts, { maxNewTokens: g.max_new_tokens, eosTokenId: null });
      expect(batched.sequences).toEqual(g.batched);
      expect(batched.finishReasons).toEqual(['length', 'length']);
      for (let i = 0; i < g.prompts.length; i++) {
        const one = await generate(model, [g.prompts[i]!], { maxNewTokens: g.max_new_tokens, eosTokenId: null });
        expect(one.sequences[0]).toEqual(g.single[i]);
      }
    });
  }
});

describe('KV cache', () => {
  for (const name of ['gpt2_lm', 'llama_lm', 'llama_tied_linear']) {
    it(`${name}: prompt + one token at a time through the cache equals one full forward (with left padding)`, () => {
      const { model } = loadPretrainedSync(dir(name));
      const rows = [[0, 0, 0, 11, 45, 3, 78, 20, 6, 51], [30, 2, 90, 17, 8, 66, 42, 5, 19, 23]];
      const mask = [[0, 0, 0, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]];
      const V = model.config.vocabSize, T = 10, split = 6;
      noGrad(() => tidy(() => {
        const full = Array.from(model.forward({ inputIds: ids2d(rows), attentionMask: ids2d(mask) }).logits.contiguousRaw().data() as Float32Array);
        const cache: LayerKV[] = [];
        const got = new Array<number>(full.length).fill(NaN);
        const put = (logits: Float32Array, t0: number, n: number) => {
          for (let b = 0; b < 2; b++) for (let t = 0; t < n; t++) for (let v = 0; v < V; v++) got[(b * T + t0 + t) * V + v] = logits[(b * n + t) * V + v]!;
        };
        const first = model.forward({ inputIds: ids2d(rows.map((r) => r.slice(0, split))), attentionMask: ids2d(mask.map((m) => m.slice(0, split))), cache });
        put(first.logits.contiguousRaw().data() as Float32Array, 0, split);
        for (let t = split; t < T; t++) {
          const step = model.forward({ inputIds: ids2d(rows.map((r) => [r[t]!])), attentionMask: ids2d(mask.map((m) => m.slice(0, t + 1))), cache });
          put(step.logits.contiguousRaw().data() as Float32Array, t, 1);
        }
        expect(cache.length).toBe(model.config.numLayers);
        expect(cache[0]!.k.shape).toEqual([2, model.config.numKvHeads, T, model.config.headDim]);
        const err = maxAbsErr(got, full, [2, T, V], mask);
        expect(err.err).toBeLessThan(1e-5);
      }));
    });
  }

  it('batched generation with padding equals unbatched (our own, longer prompts mixed)', async () => {
    const { model } = loadPretrainedSync(dir('llama3_lm'));
    const prompts = [[5, 6, 7, 8, 9, 10, 11, 12, 13], [40], [77, 3, 3, 3]];
    const all = await generate(model, prompts, { maxNewTokens: 12, eosTokenId: null });
    for (let i = 0; i < prompts.length; i++) {
      const one = await generate(model, [prompts[i]!], { maxNewTokens: 12, eosTokenId: null });
      expect(all.sequences[i]).toEqual(one.sequences[0]);
    }
  });
});

describe('sampling and stopping', () => {
  it('the same seed gives the same tokens; another seed differs; top-k 1 is greedy', async () => {
    const { model } = loadPretrainedSync(dir('llama_lm'));
    const p = [[11, 45, 3], [30, 2, 90, 17]];
    const opts = { maxNewTokens: 16, temperature: 1.5, topK: 40, topP: 0.95, eosTokenId: null };
    const a = await generate(model, p, { ...opts, seed: 7 });
    const b = await generate(model, p, { ...opts, seed: 7 });
    const c = await generate(model, p, { ...opts, seed: 8 });
    expect(a.sequences).toEqual(b.sequences);
    expect(c.sequences).not.toEqual(a.sequences);
    const greedy = await generate(model, p, { maxNewTokens: 16, eosTokenId: null });
    const k1 = await generate(model, p, { maxNewTokens: 16, temperature: 0.7, topK: 1, seed: 3, eosTokenId: null });
    expect(k1.sequences).toEqual(greedy.sequences);
    const p0 = await generate(model, p, { maxNewTokens: 16, temperature: 0.7, topP: 1e-6, seed: 3, eosTokenId: null });
    expect(p0.sequences).toEqual(greedy.sequences);
  });

  it('repetition penalty changes a repetitive greedy continuation', async () => {
    const { model } = loadPretrainedSync(dir('gpt2_lm'));
    const g = expectedOf('gpt2_lm').generate!;
    const plain = await generate(model, [g.prompts[1]!], { maxNewTokens: 10, eosTokenId: null });
    expect(new Set(plain.sequences[0]).size).toBe(1); // the tiny model repeats one token
    const pen = await generate(model, [g.prompts[1]!], { maxNewTokens: 10, eosTokenId: null, repetitionPenalty: 3 });
    expect(new Set(pen.sequences[0]).size).toBeGreaterThan(3);
  });

  it('eos and stop sequences end a sequence (kept in the output); others run on', async () => {
    const { model } = loadPretrainedSync(dir('llama_lm'));
    const g = expectedOf('llama_lm').generate!;
    // greedy continuations: [96, 83, 83, ...] and [56, 73, 43, 47, ...]
    const eos = await generate(model, g.prompts, { maxNewTokens: 10, eosTokenId: 83 });
    expect(eos.sequences[0]).toEqual([96, 83]);
    expect(eos.finishReasons[0]).toBe('eos');
    expect(eos.sequences[1]).toEqual(g.batched[1]);
    const stop = await generate(model, g.prompts, { maxNewTokens: 10, eosTokenId: null, stopSequences: [[43, 47], [999]] });
    expect(stop.sequences[1]).toEqual(g.batched[1]!.slice(0, 4));
    expect(stop.finishReasons).toEqual(['length', 'stop']);
  });

  it('streams every token through onToken, with text deltas from the tokenizer', async () => {
    const { model } = loadPretrainedSync(dir('llama_lm'));
    const g = expectedOf('llama_lm').generate!;
    const tok = { encode: () => ({ ids: [] }), decode: (ids: readonly number[]) => ids.map((i) => `<${i}>`).join('') };
    const events: TokenEvent[] = [];
    const res = await generate(model, g.prompts, { tokenizer: tok, maxNewTokens: 5, eosTokenId: null, onToken: (e) => events.push(e) });
    expect(events.length).toBe(10);
    expect(events.filter((e) => e.sequence === 1).map((e) => e.token)).toEqual(g.batched[1]!.slice(0, 5));
    expect(events.filter((e) => e.sequence === 0).map((e) => e.text).join('')).toBe(res.texts![0]);
    expect(res.texts![1]).toBe(g.batched[1]!.slice(0, 5).map((i) => `<${i}>`).join(''));
  });

  it('memory stays flat: after generation (and GC of typed-array views) nothing is left', async () => {
    const { model } = loadPretrainedSync(dir('gpt2_lm'));
    await generate(model, [[1, 2, 3]], { maxNewTokens: 4 });
    const settle = async () => { gc(); await new Promise((r) => setTimeout(r, 20)); gc(); await new Promise((r) => setTimeout(r, 20)); };
    await settle();
    const before = native.memoryStats().liveBytes;
    let peakDuring = 0;
    await generate(model, [[1, 2, 3], [4, 5]], {
      maxNewTokens: 40, temperature: 1, seed: 1, eosTokenId: null,
      onToken: () => { peakDuring = Math.max(peakDuring, native.memoryStats().liveBytes - before); },
    });
    await settle();
    expect(native.memoryStats().liveBytes).toBeLessThanOrEqual(before);
    // the cache at its largest (layers * (k + v) * B * 43 tokens * C floats) plus small per-step views
    const cacheBytes = model.config.numLayers * 2 * 2 * 43 * model.config.hiddenSize * 4;
    expect(peakDuring).toBeLessThan(2 * cacheBytes + 64 * 1024);
  });

  it('Mistral refuses sequences longer than its sliding window (not implemented)', async () => {
    const { model } = loadPretrainedSync(dir('mistral_lm'));
    const ok = await generate(model, [[1, 2, 3]], { maxNewTokens: 14, eosTokenId: null });
    expect(ok.sequences[0]!.length).toBe(14); // the last forward sees 3 + 13 = 16 tokens
    // refused before generating anything: 3 + 15 - 1 = 17 positions (generate checks maxSequenceLength)
    await expect(generate(model, [[1, 2, 3]], { maxNewTokens: 15, eosTokenId: null })).rejects.toThrow(/need 17 positions, over the 16/);
  });

  it('refuses bad arguments with clear messages', async () => {
    const { model } = loadPretrainedSync(dir('gpt2_lm'));
    await expect(generate(model, [], {})).rejects.toThrow(/non-empty array/);
    await expect(generate(model, [[1, 200]], {})).rejects.toThrow(/\[0, 97\)/);
    await expect(generate(model, [[1]], { topP: 0 })).rejects.toThrow(/topP in \(0, 1\]/);
    await expect(generate(model, [[1]], { maxNewTokens: 65 })).rejects.toThrow(/64 positions/);
    // the tokenizer goes in the options; the tokenizer-first call of earlier versions says so
    const tok = { encode: (t: string) => ({ ids: [...t].map((c) => c.charCodeAt(0) % 97) }), decode: (ids: readonly number[]) => ids.join(' ') };
    await expect(generate(model, tok as unknown as number[][], [[1]] as never)).rejects.toThrow(/received a tokenizer; pass it in the options: generate\(model, inputIds, \{ tokenizer \}\)/);
    await expect(generate(model, [[1]], { tokenizer: { encode: tok.encode } as never })).rejects.toThrow(/options.tokenizer to have a decode/);
    await expect(generate(model, [[1]], [[2]] as never)).rejects.toThrow(/options as an object/);
    const { model: cls } = loadPretrainedSync(dir('gpt2_seqcls'), { task: 'seq_cls' });
    await expect(generate(cls, [[1]], {})).rejects.toThrow(TunekitError);
  });
});
