/**
 * The PEFT invariant matrix: every method x architecture x task cell of
 * test/fixtures/peft_matrix/cells.json (methods lora, lora_embed, adalora, qlora, prompt_tuning,
 * p_tuning MLP and LSTM, prefix_tuning; gpt2, bert, llama; causal_lm, seq_cls, token_cls) on
 * tiny base models, checked as PEFT's own test matrix checks its methods:
 *  - adapters disabled == the base model (heads in modules_to_save included: PEFT keeps the
 *    original module beside the trained copy);
 *  - merged == unmerged (LoRA family; QLoRA through mergeQlora into a dense model);
 *  - only adapter and modules_to_save parameters get gradients and change in an optimizer step;
 *  - save -> reload gives the same logits (modules_to_save given by short name and by path);
 *  - PEFT -> tunekit: PEFT 0.21's folder of the cell loads and reproduces PEFT's logits;
 *  - tunekit -> PEFT: our committed folder of the cell holds the same tensor keys as PEFT's, and
 *    PEFT reproduced our logits on it (python_loads_ours.json, for that very file: sha256).
 * Fixtures: scripts/fixtures/make_peft_matrix_fixtures.py (step 1 writes models/, peft/ and
 * expected.json; step 2, `--ours`, runs this file with TUNEKIT_PEFT_MATRIX_EXPORT=<file> so that
 * it writes ours/ and our logits, then has PEFT load ours/).
 */
import { describe, it, expect, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import type { PretrainedModel, Task } from '../../lib/models/common.js';
import { PeftModel } from '../../lib/peft/base/peft_model.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { AdaLoraModel } from '../../lib/peft/adalora/model.js';
import { PromptTuningModel } from '../../lib/peft/prompt_tuning/model.js';
import { PTuningModel } from '../../lib/peft/p_tuning/model.js';
import { PrefixTuningModel } from '../../lib/peft/prefix_tuning/model.js';
import { quantizeModelSync } from '../../lib/quant/quantize.js';
import { mergeQlora } from '../../lib/peft/qlora/merge.js';
import { saveNf4PretrainedSync } from '../../lib/quant/checkpoint.js';
import { openSafetensorsSync } from '../../lib/io/safetensors.js';
import { backward, noGrad } from '../../lib/autograd/tape.js';
import * as F from '../../lib/autograd/ops.js';
import { tidy } from '../../lib/tensor/scope.js';
import { rand } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { manualSeed } from '../../lib/nn/random.js';
import { AdamW } from '../../lib/train/optimizer.js';
import { ids2d, maxRelErr, maxAbsErr, REL_TOL } from '../models/helpers.js';

const MATRIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'peft_matrix');
const EXPORT = process.env.TUNEKIT_PEFT_MATRIX_EXPORT;
const readJson = <T>(f: string): T => JSON.parse(fs.readFileSync(f, 'utf8')) as T;

type Method = 'lora' | 'lora_embed' | 'adalora' | 'qlora' | 'prompt_tuning' | 'p_tuning_mlp' | 'p_tuning_lstm' | 'prefix_tuning';
interface Cell { method: Method; arch: 'gpt2' | 'bert' | 'llama'; task: Task; peft_type: string; inputs: 'padded' | 'full'; config: Record<string, unknown> }
interface Logits { shape: number[]; logits: number[] }
interface PyEntry extends Partial<Logits> { ok: boolean; sha256: string; max_abs_vs_ours?: number; error?: string }

const CELLS = readJson<Record<string, Cell>>(path.join(MATRIX, 'cells.json'));
const EXPECTED = readJson<{ cells: Record<string, Logits> }>(path.join(MATRIX, 'expected.json')).cells;
const INPUTS = readJson<Record<string, { input_ids: number[][]; attention_mask: number[][] }>>(path.join(MATRIX, 'inputs.json'));
const LORA_FAMILY: Method[] = ['lora', 'lora_embed', 'adalora', 'qlora'];

function loadBase(cell: Cell): PretrainedModel {
  const { model } = loadPretrainedSync(path.join(MATRIX, 'models', cell.arch), { task: cell.task });
  if (cell.method === 'qlora') quantizeModelSync(model);
  return model;
}

/** Our adapter for the cell with a random (non-identity) init, as the PEFT side has. */
function create(cell: Cell, base: PretrainedModel): PeftModel {
  const cfg = { ...cell.config };
  switch (cell.method) {
    case 'lora': case 'lora_embed': case 'qlora': return new LoraModel(base, { ...cfg, init_lora_weights: false });
    case 'adalora': return new AdaLoraModel(base, { ...cfg, init_lora_weights: false });
    case 'prompt_tuning': return new PromptTuningModel(base, cfg);
    case 'p_tuning_mlp': case 'p_tuning_lstm': return new PTuningModel(base, cfg);
    case 'prefix_tuning': return new PrefixTuningModel(base, cfg);
  }
}

function fromFolder(cell: Cell, base: PretrainedModel, dir: string): PeftModel {
  switch (cell.method) {
    case 'lora': case 'lora_embed': case 'qlora': return LoraModel.fromPretrainedSync(base, dir);
    case 'adalora': return AdaLoraModel.fromPretrainedSync(base, dir);
    case 'prompt_tuning': return PromptTuningModel.fromPretrainedSync(base, dir);
    case 'p_tuning_mlp': case 'p_tuning_lstm': return PTuningModel.fromPretrainedSync(base, dir);
    case 'prefix_tuning': return PrefixTuningModel.fromPretrainedSync(base, dir);
  }
}

const inputsOf = (cell: Cell) => INPUTS[cell.inputs]!;
const maskOf = (cell: Cell) => (cell.task === 'seq_cls' ? undefined : inputsOf(cell).attention_mask);

function forward(model: PeftModel | PretrainedModel, cell: Cell): Tensor<'f32'> {
  const inp = inputsOf(cell);
  return model.forward({ inputIds: ids2d(inp.input_ids), attentionMask: ids2d(inp.attention_mask) }).logits;
}
function logitsOf(model: PeftModel | PretrainedModel, cell: Cell): { shape: number[]; logits: number[] } {
  return noGrad(() => tidy(() => {
    const l = forward(model, cell);
    return { shape: [...l.shape], logits: Array.from(l.toTypedArray() as Float32Array) };
  }));
}
const absErr = (cell: Cell, got: Logits, want: Logits) => maxAbsErr(got.logits, want.logits, want.shape, maskOf(cell)).err;
const relErr = (cell: Cell, got: Logits, want: Logits) => maxRelErr(got.logits, want.logits, want.shape, maskOf(cell));

/** Perturbs the trained copies of the modules_to_save (the heads): they must travel and be restored. */
function perturbSavedModules(model: PeftModel, seed: number): void {
  noGrad(() => {
    for (const [n, p] of model.base.namedParameters()) {
      if (!model.modulesToSave.some((m) => savesName(m, n))) continue;
      const d = rand(p.shape, { seed: seed++, low: -0.3, high: 0.3 });
      const v = p.toTypedArray() as Float32Array, dv = d.toTypedArray() as Float32Array;
      p.copyFrom(v.map((x, k) => x + dv[k]!));
      d.dispose();
    }
  });
}
/** PEFT's modules_to_save rule, written out here independently of the library's. */
function savesName(m: string, param: string): boolean {
  const parts = param.split('.');
  for (let i = 1; i < parts.length; i++) if (parts.slice(0, i).join('.').endsWith(m)) return true;
  return false;
}

const isAdapterParam = (name: string) => /\.(lora_A|lora_B|lora_E|lora_embedding_A|lora_embedding_B)(\.|$)/.test(name) || name.startsWith('prompt_encoder.');

function keysOf(file: string): string[] {
  const r = openSafetensorsSync(file);
  try {
    return [...r.names].sort();
  } finally {
    r.close();
  }
}

const tmpDirs: string[] = [];
const newDir = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-matrix-')); tmpDirs.push(d); return d; };
const started = Date.now();
const measured: Record<string, { peft: number; ours?: number }> = {};
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  if (!EXPORT) console.log(`PEFT matrix: ${Object.keys(CELLS).length} cells in ${((Date.now() - started) / 1000).toFixed(1)} s; max abs logit error vs PEFT (PEFT's folders / ours):`, JSON.stringify(measured));
});

describe.skipIf(!!EXPORT)('PEFT invariant matrix', () => {
  type PyResult = { cells: Record<string, PyEntry>; nf4_config: { ok: boolean; sha256: string; error?: string } };
  let pyCache: PyResult | null = null;
  const py = () => (pyCache ??= readJson<PyResult>(path.join(MATRIX, 'python_loads_ours.json')));

  for (const [name, cell] of Object.entries(CELLS)) {
    describe(name, () => {
      it('invariants: disabled == base, only adapter/saved parameters train, save -> reload, merged == unmerged', () => {
        manualSeed(11);
        const base = loadBase(cell);
        const baseLogits = logitsOf(base, cell);
        const model = create(cell, base);
        model.eval(); // no dropout: the invariants compare exact forwards
        perturbSavedModules(model, 500);
        const before = logitsOf(model, cell);
        expect(absErr(cell, before, baseLogits), 'the adapter changes the model').toBeGreaterThan(1e-3);

        // one training step: gradients reach exactly the adapter and the saved modules
        const frozen = new Map(model.namedParameters().filter(([, p]) => !p.requiresGrad).map(([n, p]) => [n, Float32Array.from(p.toTypedArray() as Float32Array)]));
        const trainable = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n).sort();
        const want = model.namedParameters().map(([n]) => n).filter((n) => isAdapterParam(n) || (n.startsWith('base_model.') && model.modulesToSave.some((m) => savesName(m, n.slice('base_model.'.length))))).sort();
        expect(trainable).toEqual(want);
        tidy(() => {
          const l = forward(model, cell);
          const w = rand(l.shape, { seed: 3, low: -1, high: 1 });
          backward(F.sum(F.mul(l, w)));
        });
        for (const [n, p] of model.namedParameters()) {
          if (trainable.includes(n)) expect(p.grad, `${n} has a gradient`).toBeTruthy();
          else expect(p.grad, `${n} is frozen`).toBeFalsy();
        }
        const opt = new AdamW(model.namedParameters().filter(([, p]) => p.requiresGrad), { lr: 0.05 });
        opt.step();
        opt.zeroGrad();
        for (const [n, p] of model.namedParameters()) {
          const old = frozen.get(n);
          if (old) expect(Buffer.from((p.toTypedArray() as Float32Array).buffer).equals(Buffer.from(old.buffer)), `${n} unchanged`).toBe(true);
        }
        const trained = logitsOf(model, cell);
        expect(absErr(cell, trained, before)).toBeGreaterThan(1e-4);

        // disabled adapters give the base model back (the trained heads' originals included)
        const disabled = noGrad(() => model.withAdaptersDisabled(() => logitsOf(model, cell)));
        expect(absErr(cell, disabled, baseLogits)).toBeLessThanOrEqual(1e-6);
        expect(absErr(cell, logitsOf(model, cell), trained)).toBe(0);

        // save -> reload onto a fresh base
        const dir = newDir();
        model.saveAdapterSync(dir);
        // what we write now has PEFT's layout for the cell (not only the committed ours/ folders)
        expect(keysOf(path.join(dir, 'adapter_model.safetensors'))).toEqual(keysOf(path.join(MATRIX, 'peft', name, 'adapter_model.safetensors')));
        const back = fromFolder(cell, loadBase(cell), dir);
        back.eval();
        expect(absErr(cell, logitsOf(back, cell), trained)).toBeLessThanOrEqual(1e-6);
        back.dispose();

        // merged == unmerged
        if (LORA_FAMILY.includes(cell.method)) {
          const lora = model as LoraModel;
          if (cell.method === 'qlora') {
            const { model: dense } = mergeQlora(lora);
            expect(relErr(cell, logitsOf(dense, cell), trained)).toBeLessThan(REL_TOL);
            dense.dispose();
            return;
          }
          lora.merge();
          expect(relErr(cell, logitsOf(lora, cell), trained)).toBeLessThan(REL_TOL);
          lora.unmerge();
          expect(relErr(cell, logitsOf(lora, cell), trained)).toBeLessThan(REL_TOL);
        }
        model.dispose();
      });

      it("PEFT -> tunekit: PEFT's folder reproduces PEFT's logits", () => {
        const exp = EXPECTED[name]!;
        const base = loadBase(cell);
        const baseLogits = logitsOf(base, cell);
        const m = fromFolder(cell, base, path.join(MATRIX, 'peft', name));
        m.eval();
        const got = logitsOf(m, cell);
        expect(got.shape).toEqual(exp.shape);
        measured[name] = { peft: absErr(cell, got, exp) };
        expect(relErr(cell, got, exp)).toBeLessThan(REL_TOL);
        expect(absErr(cell, baseLogits, exp), 'the adapter visibly changes the logits').toBeGreaterThan(1e-3);
        m.dispose();
      });

      it("tunekit -> PEFT: our folder has PEFT's keys and PEFT reproduced our logits on it", () => {
        const ours = path.join(MATRIX, 'ours', name), theirs = path.join(MATRIX, 'peft', name);
        expect(keysOf(path.join(ours, 'adapter_model.safetensors'))).toEqual(keysOf(path.join(theirs, 'adapter_model.safetensors')));
        const cfgOurs = readJson<Record<string, unknown>>(path.join(ours, 'adapter_config.json'));
        const cfgPeft = readJson<Record<string, unknown>>(path.join(theirs, 'adapter_config.json'));
        expect(cfgOurs.peft_type).toBe(cfgPeft.peft_type);
        expect(cfgOurs.task_type).toBe(cfgPeft.task_type);
        const asSet = (v: unknown) => (v === null || v === undefined ? null : [...new Set(v as string[])].sort());
        expect(asSet(cfgOurs.modules_to_save)).toEqual(asSet(cfgPeft.modules_to_save));
        const e = py().cells[name];
        expect(e, `python_loads_ours.json has no entry for ${name}: rerun the fixture script with --ours`).toBeDefined();
        expect(e!.error ?? null).toBeNull();
        expect(e!.ok).toBe(true);
        const sha = createHash('sha256').update(fs.readFileSync(path.join(ours, 'adapter_model.safetensors'))).digest('hex');
        expect(sha, `ours/${name} changed since PEFT read it: rerun scripts/fixtures/make_peft_matrix_fixtures.py --ours`).toBe(e!.sha256);
        const m = fromFolder(cell, loadBase(cell), ours);
        m.eval();
        const got = logitsOf(m, cell);
        const peftLogits = { shape: e!.shape!, logits: e!.logits! };
        measured[name]!.ours = absErr(cell, got, peftLogits);
        expect(relErr(cell, got, peftLogits)).toBeLessThan(REL_TOL);
        m.dispose();
      });
    });
  }

  it('transformers accepted our 4-bit config.json, and we still write that very file', () => {
    expect(py().nf4_config.error ?? null).toBeNull();
    expect(py().nf4_config.ok).toBe(true);
    const dir = newDir();
    writeNf4Config(dir);
    const sha = createHash('sha256').update(fs.readFileSync(path.join(dir, 'config.json'))).digest('hex');
    expect(sha, 'our 4-bit config.json changed since transformers read it: rerun the fixture script with --ours').toBe(py().nf4_config.sha256);
  });
});

/** The 4-bit folder whose config.json transformers checks: the tiny GPT-2, quantized. */
function writeNf4Config(dir: string): void {
  const { model } = loadPretrainedSync(path.join(MATRIX, 'models', 'gpt2'));
  quantizeModelSync(model);
  saveNf4PretrainedSync(model, dir);
  fs.rmSync(path.join(dir, 'model.safetensors'));
}

describe.runIf(!!EXPORT)('writes our folders for PEFT (TUNEKIT_PEFT_MATRIX_EXPORT)', () => {
  it('every cell', () => {
    const logits: Record<string, number[]> = {};
    for (const [i, [name, cell]] of Object.entries(CELLS).entries()) {
      manualSeed(2000 + i);
      const model = create(cell, loadBase(cell));
      model.eval();
      perturbSavedModules(model, 100 * i);
      const dir = path.join(MATRIX, 'ours', name);
      fs.rmSync(dir, { recursive: true, force: true });
      // the folder names the committed base (PEFT reads the config; the model is passed to it)
      model.adapterConfigs.get('default')!.base_model_name_or_path = `test/fixtures/peft_matrix/models/${cell.arch}`;
      model.saveAdapterSync(dir);
      logits[name] = logitsOf(model, cell).logits;
      model.dispose();
    }
    const nf4 = path.join(MATRIX, 'ours', 'nf4');
    fs.rmSync(nf4, { recursive: true, force: true });
    writeNf4Config(nf4);
    fs.writeFileSync(EXPORT!, JSON.stringify(logits));
  });
});
