/**
 * A tiny served world for the serve tests: a random GPT-2 or Llama (hidden 32, 2 layers, 512
 * positions) with the fixture BPE tokenizers (they have chat templates), and LoRA adapters with
 * random A and B (init_lora_weights false: a zero B would make every adapter the base) saved as
 * PEFT folders, with ranks and targets that differ per adapter.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import { architectureFor, savePretrainedSync, loadPretrainedSync, type PretrainedModel } from '../../lib/models/index.js';
import { LoraModel } from '../../lib/peft/index.js';
import { manualSeed } from '../../lib/nn/random.js';
import { tinyRawConfig } from '../models/helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TOKENIZERS = path.join(ROOT, 'test', 'fixtures', 'tokenizers');

export type Arch = 'gpt2' | 'llama';

/** arch -> adapter name -> LoRA config (ranks 2/4/8, different targets, rsLoRA on one) */
export const ADAPTERS: Record<Arch, Record<string, Record<string, unknown>>> = {
  gpt2: {
    alpha: { r: 2, lora_alpha: 4, target_modules: ['c_attn'] },
    beta: { r: 8, lora_alpha: 16, target_modules: ['c_attn', 'c_proj', 'c_fc'] },
    gamma: { r: 4, lora_alpha: 8, target_modules: ['c_fc'], use_rslora: true },
  },
  llama: {
    alpha: { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] },
    beta: { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
    gamma: { r: 4, lora_alpha: 8, target_modules: ['down_proj'], use_rslora: true },
  },
};

export interface ServeWorld {
  dir: string;
  modelDir: string;
  adapterDirs: Record<string, string>;
  cleanup(): void;
}

/** Writes the model and adapters into a fresh temp folder. */
export function makeServeWorld(arch: Arch = 'gpt2'): ServeWorld {
  const tokenizerDir = path.join(TOKENIZERS, arch === 'gpt2' ? 'gpt2-bpe' : 'llama-bpe');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-serve-'));
  const modelDir = path.join(dir, 'model');
  fs.mkdirSync(modelDir);
  for (const f of fs.readdirSync(tokenizerDir)) fs.copyFileSync(path.join(tokenizerDir, f), path.join(modelDir, f));
  const tok = JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> }; added_tokens?: { id: number }[] };
  const vocab = Math.max(...Object.values(tok.model.vocab), ...(tok.added_tokens ?? []).map((t) => t.id)) + 1;
  manualSeed(7);
  const a = architectureFor(arch);
  const raw = tinyRawConfig(arch, vocab, 32, 512);
  const m = a.build(a.parseConfig(raw), 'causal_lm');
  savePretrainedSync(m, modelDir);
  m.dispose();
  const adapterDirs: Record<string, string> = {};
  let seed = 100;
  for (const [name, cfg] of Object.entries(ADAPTERS[arch])) {
    manualSeed(seed++);
    const { model } = loadPretrainedSync(modelDir, { task: 'causal_lm' });
    // scale B up so adapters change greedy tokens visibly on a random model
    const lora = new LoraModel(model, { ...cfg, init_lora_weights: false });
    for (const layer of lora.layers.values()) for (const ad of layer.adapters.values()) {
      const b = ad.B.data() as Float32Array;
      for (let i = 0; i < b.length; i++) b[i] = b[i]! * 8;
    }
    adapterDirs[name] = path.join(dir, 'adapters', name);
    lora.saveAdapterSync(adapterDirs[name]);
    lora.dispose();
  }
  return { dir, modelDir, adapterDirs, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export type { PretrainedModel };
