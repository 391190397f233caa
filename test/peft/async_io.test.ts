/**
 * The fs/promises forms of PEFT folders: saveAdapter, fromPretrained, loadPeftFolder,
 * loadAdapterWeights and exportCompactLora write and read exactly what their ...Sync forms do,
 * for every method, and reject with the same typed errors. saveAdapter copies the tensors before
 * its first await, so training that goes on while the files are written does not reach them.
 */
import { describe, it, expect, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import type { PretrainedModel } from '../../lib/models/common.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { AdaLoraModel } from '../../lib/peft/adalora/model.js';
import { PromptTuningModel } from '../../lib/peft/prompt_tuning/model.js';
import { PTuningModel } from '../../lib/peft/p_tuning/model.js';
import { PrefixTuningModel } from '../../lib/peft/prefix_tuning/model.js';
import { loadPeftFolder, loadPeftFolderSync } from '../../lib/peft/base/registry.js';
import type { PeftModel } from '../../lib/peft/base/peft_model.js';
import { TunekitError } from '../../lib/errors.js';
import { noGrad } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import { manualSeed } from '../../lib/nn/random.js';
import { ids2d } from '../models/helpers.js';

const GPT2 = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'peft_matrix', 'models', 'gpt2');
const base = (): PretrainedModel => loadPretrainedSync(GPT2).model;

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
const newDir = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-peft-async-')); dirs.push(d); return d; };

function logits(m: PeftModel): number[] {
  return noGrad(() => tidy(() => Array.from(m.forward({ inputIds: ids2d([[5, 9, 2, 7]]) }).logits.toTypedArray() as Float32Array)));
}
const bytesOf = (dir: string) => ['adapter_config.json', 'adapter_model.safetensors'].map((f) => fs.readFileSync(path.join(dir, f)));

/** Each method with weights that are not their init (so a wrong load shows in the logits). */
const METHODS: Record<string, { make: (b: PretrainedModel) => PeftModel; cls: abstract new (...a: never[]) => PeftModel }> = {
  lora: { make: (b) => new LoraModel(b, { r: 2, target_modules: ['c_attn'], init_lora_weights: false }), cls: LoraModel },
  adalora: { make: (b) => new AdaLoraModel(b, { init_r: 3, target_r: 2, total_step: 10, init_lora_weights: false }), cls: AdaLoraModel },
  prompt_tuning: { make: (b) => new PromptTuningModel(b, { num_virtual_tokens: 3 }), cls: PromptTuningModel },
  p_tuning: { make: (b) => new PTuningModel(b, { num_virtual_tokens: 3, encoder_hidden_size: 8 }), cls: PTuningModel },
  prefix_tuning: { make: (b) => new PrefixTuningModel(b, { num_virtual_tokens: 3 }), cls: PrefixTuningModel },
};

describe('PEFT folders through fs/promises', () => {
  for (const [name, { make, cls }] of Object.entries(METHODS)) {
    it(`${name}: saveAdapter writes the bytes saveAdapterSync writes; loadPeftFolder and fromPretrained load what the Sync forms load`, async () => {
      manualSeed(3);
      const model = make(base());
      const want = logits(model);
      const a = newDir(), s = newDir();
      await model.saveAdapter(a);
      model.saveAdapterSync(s);
      const [ac, aw] = bytesOf(a), [sc, sw] = bytesOf(s);
      expect(ac!.equals(sc!), 'adapter_config.json').toBe(true);
      expect(aw!.equals(sw!), 'adapter_model.safetensors').toBe(true);

      const loaded = await loadPeftFolder(base(), a);
      expect(loaded).toBeInstanceOf(cls);
      const loadedSync = loadPeftFolderSync(base(), a);
      expect(logits(loaded)).toEqual(logits(loadedSync));
      // prompt methods load their saved encoder output: the logits are the trained model's
      expect(Math.max(...logits(loaded).map((v, i) => Math.abs(v - want[i]!)))).toBeLessThan(1e-4);
      const viaClass = await (cls as unknown as { fromPretrained(b: PretrainedModel, d: string): Promise<PeftModel> }).fromPretrained(base(), a);
      expect(logits(viaClass)).toEqual(logits(loaded));
    });
  }

  it('saveAdapter copies the weights before its first await: a change made while the files are written is not in them', async () => {
    manualSeed(4);
    const lora = new LoraModel(base(), { r: 2, target_modules: ['c_attn'], init_lora_weights: false });
    const want = logits(lora);
    const dir = newDir();
    const saving = lora.saveAdapter(dir);
    noGrad(() => { for (const p of lora.parameters().filter((t) => t.requiresGrad)) p.copyFrom(new Float32Array(p.numel).fill(0.5)); });
    await saving;
    const back = await LoraModel.fromPretrained(base(), dir);
    expect(Math.max(...logits(back).map((v, i) => Math.abs(v - want[i]!)))).toBeLessThan(1e-5);
  });

  it('loadAdapterWeights and exportCompactLora: the async forms equal the Sync forms', async () => {
    manualSeed(5);
    const ada = new AdaLoraModel(base(), { init_r: 3, target_r: 2, total_step: 10, init_lora_weights: false });
    const a = newDir(), s = newDir();
    const summary = await ada.exportCompactLora(a);
    expect(summary).toEqual(ada.exportCompactLoraSync(s));
    expect(bytesOf(a).every((b, i) => b.equals(bytesOf(s)[i]!))).toBe(true);
    const saved = newDir();
    await ada.saveAdapter(saved);
    const other = new AdaLoraModel(base(), { init_r: 3, target_r: 2, total_step: 10 });
    const cfg = await other.loadAdapterWeights(saved);
    expect(cfg.peft_type).toBe('ADALORA');
    expect(logits(other)).toEqual(logits(ada));
  });

  it('reject with the typed errors of the Sync forms', async () => {
    const rejection = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as TunekitError);
    const thrown = (f: () => unknown) => { try { f(); } catch (e) { return e as TunekitError; } return null; };
    const missing = path.join(newDir(), 'none');
    const prompt = newDir();
    await new PromptTuningModel(base(), { num_virtual_tokens: 2 }).saveAdapter(prompt);
    const cases: [() => Promise<unknown>, () => unknown, string][] = [
      [() => loadPeftFolder(base(), missing), () => loadPeftFolderSync(base(), missing), 'ERR_NOT_FOUND'],
      [() => LoraModel.fromPretrained(base(), prompt), () => LoraModel.fromPretrainedSync(base(), prompt), 'ERR_FORMAT'],
    ];
    const broken = newDir();
    fs.writeFileSync(path.join(broken, 'adapter_config.json'), '[1, 2]');
    cases.push([() => loadPeftFolder(base(), broken), () => loadPeftFolderSync(base(), broken), 'ERR_FORMAT']);
    for (const [p, f, code] of cases) {
      const e = await rejection(p()), s = thrown(f);
      expect(e).toBeInstanceOf(TunekitError);
      expect([e!.code, e!.message]).toEqual([code, s!.message]);
    }
  });
});
