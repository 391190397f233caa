/** Shared helpers of the AdaLoRA tests: fixture paths, the tiny GPT-2, logits of a model. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import '../../lib/models/index.js';
import { loadPretrainedSync } from '../../lib/models/loader.js';
import { tensor } from '../../lib/tensor/creation.js';
import { tidy } from '../../lib/tensor/scope.js';
import { noGrad } from '../../lib/autograd/tape.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import type { PretrainedModel } from '../../lib/models/common.js';
import type { PeftModel } from '../../lib/peft/base/peft_model.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ADA_FIXTURES = path.join(here, '..', 'fixtures', 'adalora');
export const GPT2 = path.join(here, '..', 'fixtures', 'models', 'gpt2_lm');
export const INPUT_IDS = [[5, 17, 33, 2, 96, 41, 7, 64, 12, 88], [9, 3, 71, 55, 23, 14, 60, 1, 30, 2]];

export const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;
export const gpt2 = (): PretrainedModel => loadPretrainedSync(GPT2).model;

/** Flat f32 logits of the model on INPUT_IDS (no gradient). */
export function logitsOf(model: PretrainedModel | PeftModel, ids = INPUT_IDS): Float32Array {
  return tidy(() =>
    noGrad(() => {
      const inputIds = tensor(Int32Array.from(ids.flat()), [ids.length, ids[0]!.length], 'i32') as Tensor<'i32'>;
      const attentionMask = tensor(new Int32Array(ids.length * ids[0]!.length).fill(1), [ids.length, ids[0]!.length], 'i32') as Tensor<'i32'>;
      return (model.forward({ inputIds, attentionMask }).logits.data() as Float32Array).slice();
    }),
  );
}

/** max |a - b| / (|b| + floor) */
export function maxRel(a: ArrayLike<number>, b: ArrayLike<number>, floor = 0.1): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (Math.abs(b[i]!) + floor));
  return worst;
}
