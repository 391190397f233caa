/**
 * A work folder for RLHF runs through runTraining: 40 preference records (a "good" answer
 * preferred to a "bad" one), a BPE tokenizer trained on their words, and a tiny random GPT-2
 * (32 wide, 2 layers) saved as a Hugging Face folder, with a config builder for reward, dpo and
 * ppo runs in it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { trainByteLevelBpe, saveTrainedBpe } from '../../lib/tokenizer/index.js';
import { GPT2, parseGPT2Config } from '../../lib/models/gpt2.js';
import { savePretrainedSync } from '../../lib/models/index.js';
import { manualSeed } from '../../lib/nn/random.js';

const GOOD = ['a fine happy day', 'what a great idea', 'lovely work thanks', 'good and kind', 'nice clear answer'];
const BAD = ['an awful sad day', 'what a terrible idea', 'bad broken work', 'rude and cruel', 'ugly wrong answer'];

export interface TinyRlhfWork {
  work: string;
  modelDir: string;
  data: string;
  /** a raw config for `method` writing to <work>/<out> */
  config(method: string, out: string, extra?: Record<string, unknown>): Record<string, unknown>;
  remove(): void;
}

export function makeTinyRlhfWork(prefix: string): TinyRlhfWork {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const data = path.join(work, 'prefs.jsonl');
  const lines: string[] = [];
  for (let i = 0; i < 40; i++) lines.push(JSON.stringify({ prompt: `note ${i % 7}:`, chosen: ` ${GOOD[i % 5]}`, rejected: ` ${BAD[(i + 2) % 5]}` }));
  fs.writeFileSync(data, lines.join('\n') + '\n');
  const modelDir = path.join(work, 'tiny-gpt2');
  const bpe = trainByteLevelBpe([...GOOD, ...BAD, 'note 0 1 2 3 4 5 6:'], { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  saveTrainedBpe(modelDir, bpe, { eosToken: '<|endoftext|>', bosToken: '<|endoftext|>', unkToken: '<|endoftext|>', modelMaxLength: 64 });
  manualSeed(7);
  const m = new GPT2(parseGPT2Config({
    model_type: 'gpt2', vocab_size: bpe.vocab.size, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 64, n_inner: 64,
    activation_function: 'gelu_new', resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0, layer_norm_epsilon: 1e-5,
    bos_token_id: 0, eos_token_id: 0, pad_token_id: 0, tie_word_embeddings: true,
  }), 'causal_lm');
  savePretrainedSync(m, modelDir);
  m.dispose();
  return {
    work, modelDir, data,
    config: (method, out, extra = {}) => ({
      model: modelDir, method, peft: { r: 4, lora_alpha: 8, target_modules: ['c_attn', 'c_proj'] },
      dataset: { path: data, max_length: 32, eval: { fraction: 0.25, seed: 1 } },
      training: { epochs: 1, max_steps: 6, batch_size: 4, lr: 1e-2, threads: 1 },
      output_dir: path.join(work, out), logging: { every: 1, progress: 'none' }, ...extra,
    }),
    remove: () => fs.rmSync(work, { recursive: true, force: true }),
  };
}
