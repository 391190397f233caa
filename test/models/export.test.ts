/**
 * Writes every fixture model with OUR savePretrainedSync into $TUNEKIT_MODELS_EXPORT, for
 * scripts/fixtures/make_model_fixtures.py to load with transformers (skipped otherwise).
 */
import { describe, it } from 'vitest';
import * as path from 'node:path';
import { loadPretrainedSync, savePretrainedSync } from '../../lib/models/index.js';
import { dir, expectedOf } from './helpers.js';

const OUT = process.env.TUNEKIT_MODELS_EXPORT;
const MODELS = ['gpt2_lm', 'gpt2_seqcls', 'bert_seqcls', 'bert_tokcls', 'llama_lm', 'llama_seqcls', 'llama3_lm', 'llama_tied_linear', 'qwen2_lm', 'mistral_lm'];

describe.skipIf(!OUT)('export for the Python interop check', () => {
  for (const name of MODELS) {
    it(name, () => {
      const { model } = loadPretrainedSync(dir(name), { task: expectedOf(name).task });
      savePretrainedSync(model, path.join(OUT!, name));
      model.dispose();
    });
  }
});
