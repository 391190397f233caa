/**
 * AdaLoRA on a pretrained model (PEFT's AdaLoraModel, which extends LoraModel): target linear
 * layers get SVD-form adapters (AdaLoraLinear); the rank allocator prunes singular values across
 * all layers during training; an orthogonal regulariser keeps A and B near-orthogonal. Both run
 * from trainingHooks(), which the Trainer calls by itself every step, so an AdaLoRA model can
 * never silently train as plain LoRA.
 *
 * Files are PEFT's: keys `<module>.lora_A` [k, in], `.lora_E` [k, 1], `.lora_B` [out, k] (no
 * `.weight`, only the kept ranks once a rank_pattern exists), `ranknum` not saved, rank_pattern
 * in adapter_config.json. `exportCompactLoraSync()` writes a plain LoRA folder of the kept ranks.
 *
 * @example
 * const model = new AdaLoraModel(base, { init_r: 12, target_r: 4, total_step: 500, tinit: 50, tfinal: 100, lora_alpha: 32 });
 * await new Trainer({ model, task: 'causal_lm', train, padTokenId: 0 }).fit();
 * model.saveAdapterSync('out/adapter');          // PEFT AdaLoRA folder
 * model.exportCompactLoraSync('out/compact');    // plain LoRA folder, kept ranks only
 */
import { join } from 'node:path';
import { LoraModel } from '../lora/model.js';
import { findTargets, isTarget } from '../base/targets.js';
import { readAdapterFolder, readAdapterFolderSync, writeAdapterFolder, writeAdapterFolderSync, KEY_PREFIX, type AdapterFolder } from '../base/adapter_io.js';
import { rankReportOf, rankTable, rankChartSvg, type RankReport } from './rank_report.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { withPeftHeads, type TrainingHooks } from '../base/peft_model.js';
import { AdaLoraLinear, type SvdAdapter } from './layer.js';
import { normalizeAdaloraConfig, checkSchedule, type AdaloraConfig } from './config.js';
import { RankAllocator, type RankPattern } from './allocator.js';
import { f32FromRaw, rawFromTensor } from '../../models/weights.js';
import type { PretrainedModel } from '../../models/common.js';
import { Tensor } from '../../tensor/tensor.js';
import type { Device } from '../../tensor/device.js';
import { tensor } from '../../tensor/creation.js';
import { tidy } from '../../tensor/scope.js';
import { noGrad } from '../../autograd/tape.js';
import * as F from '../../autograd/ops.js';
import type { RawTensor } from '../../io/safetensors.js';
import { TunekitError } from '../../errors.js';

/** What one allocation step did (returned by updateAndAllocate, for logs and tests). */
export interface AllocationInfo {
  step: number;
  /** the total budget at this step: ranks, or parameters when budget_unit is 'params' */
  budget: number;
  /** 'update' (EMAs only), 'mask' (budget applied), 'freeze' (T - tfinal: pattern fixed), 'frozen' (pattern re-applied) */
  phase: 'update' | 'mask' | 'freeze' | 'frozen';
  /** kept ranks per layer after this step */
  kept: Record<string, number>;
}

/** What exportCompactLora wrote: the file's r, each layer's kept rank, and the parameter count. */
export interface CompactLoraSummary {
  r: number;
  ranks: Record<string, number>;
  parameters: number;
}

export class AdaLoraModel extends LoraModel {
  /** the trainable adapter's allocator (created on first use; null for inference-only models) */
  private allocator: RankAllocator | null;
  /** rank_pattern of the folder being loaded (its tensors hold only the kept ranks) */
  private loadingPattern: RankPattern | null;
  /** set by fromPretrainedSync when the file's adapter is for inference */
  lastAllocation: AllocationInfo | null;

  constructor(base: PretrainedModel, config: Record<string, unknown>, adapterName = 'default') {
    super(base, config, adapterName);
    this.allocator = null;
    this.loadingPattern = null;
    this.lastAllocation = null;
  }

  /** AdaLoRA's schema and model step (LoraModel's constructor calls this through `new.target`). */
  protected static override configFor(config: unknown, base: PretrainedModel): AdaloraConfig {
    return normalizeAdaloraConfig(config, base.config.modelType, base.task);
  }

  /** The allocator holds the adapters' tensors and its own state: it follows Module.to() (after the layers re-pointed theirs). */
  protected override onMoved(swap: (t: Tensor) => Tensor, device: Device): void {
    super.onMoved(swap, device);
    this.allocator?.moveTo(swap, device);
  }

  /** The (normalised, snake_case) AdaLoRA config of an adapter. */
  adaloraConfig(name = this.activeAdapter): AdaloraConfig {
    const c = this.adapterConfigs.get(name);
    if (!c) throw new TunekitError('ERR_VALUE', `no adapter named '${name}'`);
    return c as unknown as AdaloraConfig;
  }

  /**
   * Adds a named AdaLoRA adapter (PEFT trains one AdaLoRA adapter at a time: the active one).
   * @example model.addAdapter('other', { init_r: 8, target_r: 2, total_step: 100 })
   */
  override addAdapter(name: string, config: Record<string, unknown>): void {
    if (this.adapterConfigs.has(name)) throw new TunekitError('ERR_VALUE', `adapter '${name}' already exists`);
    const cfg = normalizeAdaloraConfig(config, this.base.config.modelType, this.base.task);
    const spec = cfg.target_modules!;
    const targets = findTargets(this.base, spec, cfg.layers_to_transform, { allowEmpty: this.layers.size > 0, layersPattern: cfg.layers_pattern });
    for (const t of targets) {
      if (this.layers.has(t.name)) continue;
      const layer = new AdaLoraLinear(t.module);
      layer.train(t.module.training); // the base model's mode (eval after loading: no dropout)
      t.parent.replaceChild(t.child, layer);
      this.layers.set(t.name, layer);
    }
    let n = 0;
    for (const [path, layer] of this.layers) {
      if (!(layer instanceof AdaLoraLinear)) continue;
      if (!targets.some((t) => t.name === path) && !this.wrappedTarget(path, cfg)) continue;
      // PEFT corrects fan_in_fan_out to the layer's real layout (Conv1D: true)
      cfg.fan_in_fan_out = layer.base_layer.layout === 'in_out';
      layer.addSvdAdapter(name, { r: cfg.init_r, alpha: cfg.lora_alpha, dropout: cfg.lora_dropout, init: cfg.init_lora_weights });
      n++;
    }
    if (n === 0) throw new TunekitError('ERR_CONFIG', `AdaLoRA target_modules ${JSON.stringify(spec)} matched no layer`);
    // as PEFT does, 'all-linear' is saved as the resolved list of module paths
    if (typeof spec === 'string' && spec.toLowerCase() === 'all-linear') {
      cfg.target_modules = this.svdAdapters(name).map((l) => l.path).sort();
    }
    this.adapterConfigs.set(name, { ...cfg } as unknown as Record<string, unknown>);
    this.setAdapter(this.activeAdapter ?? name);
  }

  /** Whether an already wrapped layer is a target of `cfg` (same rules as findTargets). */
  private wrappedTarget(path: string, cfg: AdaloraConfig): boolean {
    return isTarget(path, { ...cfg, target_modules: cfg.target_modules! });
  }

  override setAdapter(name: string): void {
    super.setAdapter(name);
    // inference_mode: the adapter is frozen, as PEFT freezes it
    const trains = this.adapterConfigs.get(name)!.inference_mode !== true;
    for (const layer of this.svdLayers()) for (const [n, ad] of layer.svd) ad.E.requiresGrad = n === name && trains;
    this.markTrainable(trains ? this.trainableAdapterParams() : []);
    if (this.allocator) {
      this.allocator.dispose();
      this.allocator = null;
    }
  }

  private trainableAdapterParams(): Tensor[] {
    const out: Tensor[] = [];
    for (const { ad } of this.svdAdapters()) out.push(ad.lora.A, ad.E, ad.lora.B);
    return out;
  }

  private *svdLayers(): Generator<AdaLoraLinear> {
    for (const layer of this.layers.values()) if (layer instanceof AdaLoraLinear) yield layer;
  }

  /** The adapter's layers in model order, with their module paths. */
  svdAdapters(adapter = this.activeAdapter): { path: string; layer: AdaLoraLinear; ad: SvdAdapter }[] {
    const out: { path: string; layer: AdaLoraLinear; ad: SvdAdapter }[] = [];
    for (const [path, layer] of this.layers) {
      if (!(layer instanceof AdaLoraLinear)) continue;
      const ad = layer.svd.get(adapter);
      if (ad) out.push({ path, layer, ad });
    }
    return out;
  }

  /** The rank allocator of the active adapter (needs total_step, from the config or the trainer). */
  rankAllocator(totalSteps?: number): RankAllocator {
    const cfg = this.adaloraConfig();
    if (cfg.total_step === null) {
      if (!totalSteps) throw new TunekitError('ERR_CONFIG', 'AdaLoRA total_step is not set: give it in the config or let the Trainer set it from its step count');
      checkSchedule(cfg, totalSteps);
      cfg.total_step = totalSteps;
    }
    if (!this.allocator) {
      this.allocator = new RankAllocator(
        this.svdAdapters().map(({ path, ad }) => ({ name: path, A: ad.lora.A, E: ad.E, B: ad.lora.B })),
        { targetR: cfg.target_r, tinit: cfg.tinit, tfinal: cfg.tfinal, deltaT: cfg.deltaT, beta1: cfg.beta1, beta2: cfg.beta2, totalStep: cfg.total_step, budgetUnit: cfg.budget_unit ?? 'rank' },
      );
    }
    return this.allocator;
  }

  /**
   * PEFT's update_and_allocate, for step = the optimizer steps done so far (1-based). Call it
   * after optimizer.step() and before the gradients are cleared; the Trainer does so by itself.
   * Before T - tfinal: update the scores and mask to the budget (every deltaT steps); at
   * T - tfinal: mask to the target budget and freeze the pattern into rank_pattern; after:
   * re-apply the frozen pattern.
   * @example model.updateAndAllocate(step)  // in a hand-written loop, before zeroGrad()
   */
  updateAndAllocate(step: number, totalSteps?: number): AllocationInfo {
    const alloc = this.rankAllocator(totalSteps);
    const cfg = this.adaloraConfig();
    const end = cfg.total_step! - cfg.tfinal;
    let phase: AllocationInfo['phase'];
    let budget: number;
    if (step < end) {
      const res = alloc.updateAndAllocate(step);
      budget = res.budget;
      phase = res.pattern ? 'mask' : 'update';
      if (res.pattern) cfg.rank_pattern = res.pattern;
    } else if (step === end) {
      const res = alloc.updateAndAllocate(step, true);
      budget = res.budget;
      cfg.rank_pattern = res.pattern;
      alloc.resetIpt();
      phase = 'freeze';
    } else {
      if (!cfg.rank_pattern) throw new TunekitError('ERR_STATE', `AdaLoRA step ${step} is past total_step - tfinal (${end}) but no rank pattern was frozen: was updateAndAllocate called at step ${end}?`);
      alloc.maskUsingPattern(cfg.rank_pattern);
      budget = alloc.targetBudget;
      phase = 'frozen';
    }
    const kept: Record<string, number> = {};
    for (const { path, ad } of this.svdAdapters()) kept[path] = keptRanks(cfg, path, ad);
    this.lastAllocation = { step, budget, phase, kept };
    return this.lastAllocation;
  }

  /** The kept ranks per layer of the active adapter and the parameters they hold (all of init_r before any masking). */
  rankReport(): RankReport {
    const cfg = this.adaloraConfig();
    const rows = this.svdAdapters().map(({ path, ad }) => ({
      layer: path, kept: keptRanks(cfg, path, ad), initR: ad.ranknum, inFeatures: ad.lora.A.shape[1]!, outFeatures: ad.lora.B.shape[0]!,
    }));
    return rankReportOf(cfg.target_r, rows);
  }

  /** After a training run: the rank table (returned for the log) and ranks.svg in the run folder (written through fs/promises). */
  override async writeRunReport(outputDir: string): Promise<string[]> {
    const report = this.rankReport();
    await writeFileAtomic(join(outputDir, 'ranks.svg'), rankChartSvg(report));
    return [rankTable(report), `rank chart: ${join(outputDir, 'ranks.svg')}`];
  }

  /**
   * PEFT's orthogonal regulariser: orth_reg_weight * mean over the A and B matrices of
   * ||A A^T - I||_F and ||B^T B - I||_F (differentiable; null when the weight is 0).
   */
  orthRegularizer(): Tensor<'f32'> | null {
    const w = this.adaloraConfig().orth_reg_weight;
    if (w === 0) return null;
    const terms: Tensor<'f32'>[] = [];
    for (const { ad } of this.svdAdapters()) {
      const r = ad.lora.A.shape[0]!;
      const eye = new Float32Array(r * r);
      for (let i = 0; i < r; i++) eye[i * r + i] = 1;
      const I = tensor(eye, [r, r], 'f32', ad.lora.A.device);
      const covA = F.matmul(ad.lora.A, ad.lora.A, { transB: true });
      const covB = F.matmul(ad.lora.B, ad.lora.B, { transA: true });
      for (const cov of [covA, covB]) terms.push(F.sqrt(F.sum(F.square(F.sub(cov, I)))));
    }
    if (!terms.length) return null;
    let total = terms[0]!;
    for (const t of terms.slice(1)) total = F.add(total, t);
    return F.scale(total, w / terms.length);
  }

  override trainingHooks(): TrainingHooks {
    return {
      extraLoss: () => this.orthRegularizer(),
      afterOptimizerStep: (step, totalSteps) => {
        this.updateAndAllocate(step, totalSteps);
      },
    };
  }

  override mergeAndUnload(): PretrainedModel {
    const es = [...this.svdLayers()].flatMap((l) => [...l.svd.values()].map((a) => a.E));
    const base = super.mergeAndUnload();
    for (const e of es) e.dispose();
    this.allocator?.dispose();
    this.allocator = null;
    return base;
  }

  /** Kept rank indices of a layer: the rank_pattern's (all ranks when there is none). */
  private keptRows(path: string, r: number, cfg: AdaloraConfig): number[] {
    const row = cfg.rank_pattern?.[`${path}.lora_E`];
    if (!row) return Array.from({ length: r }, (_, i) => i);
    if (row.length !== r) throw new TunekitError('ERR_SHAPE', `rank_pattern for ${path} has ${row.length} entries but the layer has rank ${r}`);
    return row.flatMap((k, i) => (k ? [i] : []));
  }

  protected override adapterStateDict(adapter: string): Map<string, Tensor> {
    const cfg = this.adaloraConfig(adapter);
    const out = new Map<string, Tensor>();
    for (const { path, ad } of this.svdAdapters(adapter)) {
      const r = ad.ranknum;
      const rows = this.keptRows(path, r, cfg);
      if (rows.length === r) {
        out.set(`${path}.lora_A`, ad.lora.A);
        out.set(`${path}.lora_E`, ad.E);
        out.set(`${path}.lora_B`, ad.lora.B);
        continue;
      }
      // PEFT saves only the kept ranks (resize_state_dict_by_rank_pattern)
      const { A, E, B } = gatherRanks(ad, rows);
      out.set(`${path}.lora_A`, A);
      out.set(`${path}.lora_E`, E);
      out.set(`${path}.lora_B`, B);
    }
    return out;
  }

  /** A PEFT AdaLoRA folder (kept ranks only once a rank_pattern exists); total_step must be set. */
  protected override adapterFolderContent(adapter: string): { config: Record<string, unknown>; tensors: RawTensor[] } {
    const cfg = this.adaloraConfig(adapter);
    if (cfg.total_step === null) throw new TunekitError('ERR_CONFIG', 'AdaLoRA total_step is not set: PEFT cannot load an AdaLoRA config without it. Set total_step or train first (the Trainer sets it).');
    // the kept-rank tensors gathered for the file are temporaries: copied to bytes, then freed
    return tidy(() => super.adapterFolderContent(adapter));
  }

  /** PEFT's init_lora_weights is a bool: 'lora' (a training-time choice) is written as true. */
  protected override adapterFileConfig(cfg: object): Record<string, unknown> {
    const out = super.adapterFileConfig(cfg);
    if (out.init_lora_weights === 'lora') out.init_lora_weights = true;
    return out;
  }

  protected override applyAdapterFolder(folder: AdapterFolder, adapter: string): Record<string, unknown> {
    this.loadingPattern = (folder.config.rank_pattern as RankPattern | null | undefined) ?? null;
    try {
      return super.applyAdapterFolder(folder, adapter);
    } finally {
      this.loadingPattern = null;
    }
  }

  protected override loadAdapterState(adapter: string, tensors: Map<string, RawTensor>): void {
    this.loadBaseLayerTensors(tensors);
    for (const { path, ad } of this.svdAdapters(adapter)) {
      const r = ad.ranknum;
      const row = this.loadingPattern?.[`${path}.lora_E`] ?? null;
      const rows = row ? row.flatMap((k, i) => (k ? [i] : [])) : Array.from({ length: r }, (_, i) => i);
      if (row && row.length !== r) throw new TunekitError('ERR_SHAPE', `rank_pattern for ${path} has ${row.length} entries but init_r is ${r}`);
      const k = rows.length;
      const want: [string, Tensor, number[]][] = [
        [`${path}.lora_A`, ad.lora.A, [k, ad.lora.A.shape[1]!]],
        [`${path}.lora_E`, ad.E, [k, 1]],
        [`${path}.lora_B`, ad.lora.B, [ad.lora.B.shape[0]!, k]],
      ];
      const loaded: Float32Array[] = [];
      for (const [key, , shape] of want) {
        const raw = tensors.get(key);
        if (!raw) throw new TunekitError('ERR_FORMAT', `adapter file lacks '${key}'`);
        if (raw.shape.join() !== shape.join()) throw new TunekitError('ERR_SHAPE', `adapter tensor '${key}' is [${raw.shape}] but the layer expects [${shape}]${row ? ` (${k} kept ranks of ${r} by rank_pattern)` : ''}`);
        const t = f32FromRaw(raw);
        loaded.push((t.data() as Float32Array).slice());
        t.dispose();
        tensors.delete(key);
      }
      scatterRanks(ad, rows, loaded[0]!, loaded[1]!, loaded[2]!);
    }
    if (tensors.size) throw new TunekitError('ERR_FORMAT', `adapter file has tensors that match no layer: ${[...tensors.keys()].slice(0, 5).join(', ')}`);
  }

  /**
   * Writes the kept ranks as a plain PEFT LoRA folder (loadable by LoraModel.fromPretrainedSync and
   * PEFT): per layer A' = A[kept] [k, in] and B' = B[:, kept] diag(E[kept]) * scale [out, k],
   * so that B' A' equals the AdaLoRA delta exactly. Config: r = the largest kept rank,
   * lora_alpha = r, per-layer rank_pattern / alpha_pattern = k (every layer's scale is 1),
   * target_modules = the full paths of the layers that keep at least one rank (a layer with
   * none is left out: LoRA has no rank-0 adapter). Kept = in the rank_pattern (if any) and E != 0.
   * Written through fs/promises.
   * @example const { ranks } = await model.exportCompactLora('out/compact');  // { 'transformer.h.0.attn.c_attn': 3, ... }
   */
  async exportCompactLora(dir: string, adapter = this.activeAdapter): Promise<CompactLoraSummary> {
    const { config, tensors, summary } = this.compactLora(adapter);
    await writeAdapterFolder(dir, config, tensors);
    return summary;
  }

  /**
   * {@link exportCompactLora} with blocking writes.
   * @example const { r } = model.exportCompactLoraSync('out/compact');
   */
  exportCompactLoraSync(dir: string, adapter = this.activeAdapter): CompactLoraSummary {
    const { config, tensors, summary } = this.compactLora(adapter);
    writeAdapterFolderSync(dir, config, tensors);
    return summary;
  }

  /** The compact LoRA folder's config and tensors, and its summary. */
  private compactLora(adapter: string): { config: Record<string, unknown>; tensors: RawTensor[]; summary: CompactLoraSummary } {
    const cfg = this.adaloraConfig(adapter);
    const ranks: Record<string, number> = {};
    const raws: RawTensor[] = [];
    let parameters = 0;
    tidy(() => {
      for (const { path, ad } of this.svdAdapters(adapter)) {
        const e = ad.E.toTypedArray() as Float32Array;
        const rows = this.keptRows(path, ad.ranknum, cfg).filter((i) => e[i] !== 0);
        if (!rows.length) continue;
        const { A, E, B } = gatherRanks(ad, rows);
        const k = rows.length, outF = B.shape[0]!;
        const b = B.data() as Float32Array, ev = E.data() as Float32Array;
        const folded = new Float32Array(outF * k);
        for (let o = 0; o < outF; o++) for (let j = 0; j < k; j++) folded[o * k + j] = b[o * k + j]! * ev[j]! * ad.lora.scale;
        raws.push(rawFromTensor(`${KEY_PREFIX}${path}.lora_A.weight`, A, 'f32'));
        raws.push({ name: `${KEY_PREFIX}${path}.lora_B.weight`, dtype: 'F32', shape: [outF, k], bytes: new Uint8Array(folded.buffer) });
        ranks[path] = k;
        parameters += A.numel + outF * k;
      }
      for (const [name, p] of this.savedModuleParams()) raws.push(rawFromTensor(KEY_PREFIX + name, p, 'f32'));
    });
    const paths = Object.keys(ranks);
    if (!paths.length) throw new TunekitError('ERR_VALUE', 'exportCompactLoraSync: no layer keeps any rank (every E is 0): nothing to export');
    const r = Math.max(...Object.values(ranks));
    // what the file holds, PEFT's head names included (as PEFT writes it)
    const toSave = withPeftHeads(cfg.modules_to_save ?? [], this.base.task);
    const pattern = Object.fromEntries(paths.filter((p) => ranks[p] !== r).map((p) => [p, ranks[p]!]));
    const loraCfg: Record<string, unknown> = {
      peft_type: 'LORA',
      task_type: cfg.task_type,
      r,
      lora_alpha: r,
      lora_dropout: cfg.lora_dropout,
      target_modules: paths,
      fan_in_fan_out: cfg.fan_in_fan_out,
      bias: 'none',
      use_rslora: false,
      use_dora: false,
      modules_to_save: toSave.length ? toSave : null,
      init_lora_weights: true,
      rank_pattern: pattern,
      alpha_pattern: pattern,
      layers_to_transform: null,
      base_model_name_or_path: cfg.base_model_name_or_path,
      inference_mode: true,
    };
    return { config: loraCfg, tensors: raws, summary: { r, ranks, parameters } };
  }

  /**
   * Loads a PEFT AdaLoRA folder onto a base model (pruned tensors are put back at their ranks
   * with zeros elsewhere, so the layers keep init_r as PEFT's ranknum does).
   * The folder is read through fs/promises.
   * @example const ada = await AdaLoraModel.fromPretrained(base, 'out/adapter');
   */
  static override async fromPretrained(base: PretrainedModel, dir: string, adapterName = 'default'): Promise<AdaLoraModel> {
    return AdaLoraModel.fromAdapterFolder(base, await readAdapterFolder(dir), dir, adapterName);
  }

  /**
   * {@link AdaLoraModel.fromPretrained} with blocking reads.
   * @example const ada = AdaLoraModel.fromPretrainedSync(base, 'out/adapter');
   */
  static override fromPretrainedSync(base: PretrainedModel, dir: string, adapterName = 'default'): AdaLoraModel {
    return AdaLoraModel.fromAdapterFolder(base, readAdapterFolderSync(dir), dir, adapterName);
  }

  /** A AdaLoraModel over `base` holding a folder's adapter, as read from `dir`. */
  protected static override fromAdapterFolder(base: PretrainedModel, folder: AdapterFolder, dir: string, adapterName: string): AdaLoraModel {
    const { config } = folder;
    if (config.peft_type !== 'ADALORA') throw new TunekitError('ERR_FORMAT', `${dir} holds a ${String(config.peft_type)} adapter, not ADALORA`);
    const m = new AdaLoraModel(base, { ...config, inference_mode: false }, adapterName);
    m.applyAdapterFolder(folder, adapterName);
    return m;
  }
}

/** A [k, in], E [k, 1], B [out, k] holding ranks `rows` of an adapter (new host tensors, for files). */
function gatherRanks(ad: SvdAdapter, rows: number[]): { A: Tensor<'f32'>; E: Tensor<'f32'>; B: Tensor<'f32'> } {
  // copies (from a device too): the adapter may live in a GPU's memory
  const a = ad.lora.A.toTypedArray() as Float32Array, e = ad.E.toTypedArray() as Float32Array, b = ad.lora.B.toTypedArray() as Float32Array;
  const r = ad.ranknum, inF = ad.lora.A.shape[1]!, outF = ad.lora.B.shape[0]!, k = rows.length;
  const A = new Float32Array(k * inF), E = new Float32Array(k), B = new Float32Array(outF * k);
  rows.forEach((src, j) => {
    A.set(a.subarray(src * inF, (src + 1) * inF), j * inF);
    E[j] = e[src]!;
    for (let o = 0; o < outF; o++) B[o * k + j] = b[o * r + src]!;
  });
  return { A: tensor(A, [k, inF]), E: tensor(E, [k, 1]), B: tensor(B, [outF, k]) };
}

/** Writes kept ranks back at positions `rows` (zeros at the others). */
function scatterRanks(ad: SvdAdapter, rows: number[], a: Float32Array, e: Float32Array, b: Float32Array): void {
  const r = ad.ranknum, inF = ad.lora.A.shape[1]!, outF = ad.lora.B.shape[0]!, k = rows.length;
  const A = new Float32Array(r * inF), E = new Float32Array(r), B = new Float32Array(outF * r);
  rows.forEach((dst, j) => {
    A.set(a.subarray(j * inF, (j + 1) * inF), dst * inF);
    E[dst] = e[j]!;
    for (let o = 0; o < outF; o++) B[o * r + dst] = b[o * k + j]!;
  });
  noGrad(() => {
    ad.lora.A.copyFrom(A);
    ad.E.copyFrom(E);
    ad.lora.B.copyFrom(B);
  });
}

/** Ranks a layer keeps under the config's rank_pattern (all of init_r before any masking). */
function keptRanks(cfg: AdaloraConfig, path: string, ad: SvdAdapter): number {
  const row = cfg.rank_pattern?.[`${path}.lora_E`];
  return row ? row.filter(Boolean).length : ad.ranknum;
}
