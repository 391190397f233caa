/** Shared helpers of the prompt-learning tests: fixture folders, inputs, encoders from PEFT's state. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { openSafetensorsSync } from '../../lib/io/safetensors.js';
import { f32FromRaw } from '../../lib/models/weights.js';
import { noGrad } from '../../lib/autograd/tape.js';
import type { Module } from '../../lib/nn/module.js';
import type { PretrainedModel } from '../../lib/models/common.js';
import { dir as modelDir, ids2d } from '../models/helpers.js';

export const PROMPT_FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'peft_prompt');
export const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;
export interface PromptInputs { input_ids: number[][]; attention_mask: number[][] }
export const promptInputs = () => readJson<PromptInputs>(path.join(PROMPT_FIXTURES, 'inputs.json'));

export function baseModel(name: string): PretrainedModel {
  const { model } = loadPretrainedSync(modelDir(name), { task: 'causal_lm' });
  model.eval();
  return model;
}

export function fixtureInputs() {
  const inp = promptInputs();
  return { inputIds: ids2d(inp.input_ids), attentionMask: ids2d(inp.attention_mask) };
}

/** Copies PEFT's prompt-encoder state (encoder.safetensors, PEFT's names) into our encoder. */
export function loadEncoderState(encoder: Module, file: string): string[] {
  const r = openSafetensorsSync(file);
  const ours = new Map(encoder.namedParameters());
  const loaded: string[] = [];
  try {
    noGrad(() => {
      for (const n of r.names) {
        const p = ours.get(n);
        if (!p) throw new Error(`our encoder has no parameter ${n} (has ${[...ours.keys()].join(', ')})`);
        const t = f32FromRaw(r.readTensor(n));
        if (t.shape.join() !== p.shape.join()) throw new Error(`${n}: PEFT [${t.shape}] vs ours [${p.shape}]`);
        p.copyFrom(t.data());
        t.dispose();
        loaded.push(n);
      }
    });
  } finally {
    r.close();
  }
  const missing = [...ours.keys()].filter((k) => !loaded.includes(k));
  if (missing.length) throw new Error(`PEFT's state lacks ${missing.join(', ')}`);
  return loaded;
}

/** Max |a - b| over the real (mask 1) positions of [B, T, V] logits. */
export function maxErrMasked(got: ArrayLike<number>, want: number[][][], mask: number[][]): number {
  const B = want.length, T = want[0]!.length, V = want[0]![0]!.length;
  let m = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      if (!mask[b]![t]) continue;
      for (let v = 0; v < V; v++) m = Math.max(m, Math.abs(got[(b * T + t) * V + v]! - want[b]![t]![v]!));
    }
  }
  return m;
}
