/**
 * PeftModel: a pretrained model plus one or more named adapters of one method. It forwards like
 * the model, trains only adapter parameters (and modules_to_save), and saves/loads PEFT folders.
 */
import { Module } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { ModelInputs, ModelOutput, PretrainedModel } from '../../models/common.js';
import { rawFromTensor, f32FromRaw } from '../../models/weights.js';
import { TunekitError } from '../../errors.js';
import { writeAdapterFolder, readAdapterFolder, KEY_PREFIX } from './adapter_io.js';
import { noGrad } from '../../autograd/tape.js';
import type { RawTensor } from '../../io/safetensors.js';

/**
 * What a method needs from the training loop. The Trainer calls these by itself for every
 * PeftModel, so a method such as AdaLoRA cannot silently run as plain LoRA.
 */
export interface TrainingHooks {
  /** a term added to the loss before backward (AdaLoRA's orthogonal regulariser) */
  extraLoss?(): Tensor<'f32'> | null;
  /** after each optimizer step, before gradients are cleared (AdaLoRA's rank allocation) */
  afterOptimizerStep?(step: number, totalSteps: number): void;
}

export abstract class PeftModel extends Module {
  readonly base: PretrainedModel;
  /** adapter name -> PEFT-style config (snake_case, as written to adapter_config.json) */
  readonly adapterConfigs = new Map<string, Record<string, unknown>>();
  activeAdapter: string;
  protected adaptersDisabled = false;
  /** module paths whose parameters are trained and saved whole (e.g. the classification head) */
  readonly modulesToSave: string[];

  constructor(base: PretrainedModel, adapterName: string, modulesToSave: string[]) {
    super();
    this.base = this.module('base_model', base);
    this.activeAdapter = adapterName;
    this.modulesToSave = modulesToSave;
  }

  get config() {
    return this.base.config;
  }
  get task() {
    return this.base.task;
  }

  abstract forward(inputs: ModelInputs): ModelOutput;

  /** Hooks into the training loop; none by default. */
  trainingHooks(): TrainingHooks {
    return {};
  }

  /** Adapter tensors of `adapter` with their PEFT keys (adapter name stripped). */
  protected abstract adapterStateDict(adapter: string): Map<string, Tensor>;
  /** Puts loaded tensors (keys as saved by PEFT, prefix stripped) into adapter `adapter`. */
  protected abstract loadAdapterState(adapter: string, tensors: Map<string, RawTensor>): void;

  /** Freezes the base model and marks adapter + modules_to_save parameters trainable. */
  protected markTrainable(adapterParams: Tensor[]): void {
    this.base.requiresGrad_(false);
    for (const p of adapterParams) p.requiresGrad = true;
    const params = this.base.namedParameters();
    // PEFT lists both head names (classifier, score) for classification tasks, so one of them
    // is absent from every model; any other entry that matches nothing is a mistake
    for (const m of this.modulesToSave) {
      if (!PEFT_HEAD_ALIASES.has(m) && !params.some(([name]) => savesParameter(m, name))) {
        throw new TunekitError('ERR_CONFIG', `modules_to_save: '${m}' names no module of this ${this.base.config.modelType} model (a module path such as 'transformer.wpe', or its last part 'wpe')`);
      }
    }
    for (const [name, p] of params) {
      if (this.modulesToSave.some((m) => savesParameter(m, name))) p.requiresGrad = true;
    }
  }

  /** Parameters of the modules_to_save, by model path. */
  protected savedModuleParams(): [string, Tensor][] {
    return this.base.namedParameters().filter(([name]) => this.modulesToSave.some((m) => savesParameter(m, name)));
  }

  /**
   * Runs fn with every adapter switched off: the model is then exactly the base model (DPO and
   * PPO use this as the frozen reference, without a second copy of the weights).
   */
  withAdaptersDisabled<T>(fn: () => T): T {
    const prev = this.adaptersDisabled;
    this.adaptersDisabled = true;
    try {
      return fn();
    } finally {
      this.adaptersDisabled = prev;
    }
  }

  get adaptersEnabled(): boolean {
    return !this.adaptersDisabled;
  }

  tokenEmbeddings(): Tensor {
    return this.base.tokenEmbeddings();
  }
  embedTokens(ids: Tensor<'i32'>): Tensor<'f32'> {
    return this.base.embedTokens(ids);
  }

  /**
   * Writes a PEFT folder for one adapter (default: the active one), loadable by Python PEFT.
   * @example peftModel.saveAdapter('out/adapter')
   */
  saveAdapter(dir: string, adapter = this.activeAdapter): void {
    const cfg = this.adapterConfigs.get(adapter);
    if (!cfg) throw new TunekitError('ERR_VALUE', `no adapter named '${adapter}'`);
    const tensors: RawTensor[] = [];
    for (const [key, t] of this.adapterStateDict(adapter)) tensors.push(rawFromTensor(KEY_PREFIX + key, t, 'f32'));
    for (const [name, p] of this.savedModuleParams()) tensors.push(rawFromTensor(KEY_PREFIX + name, p, 'f32'));
    writeAdapterFolder(dir, this.adapterFileConfig(cfg), tensors);
  }

  /**
   * Method-specific results written after a training run into its folder; returns lines for the
   * log (none by default; AdaLoRA: the kept ranks per layer and ranks.svg).
   */
  writeRunReport(_outputDir: string): string[] {
    return [];
  }

  /** The adapter_config.json written for a config (methods map tunekit-only values to PEFT's here). */
  protected adapterFileConfig(cfg: object): Record<string, unknown> {
    return { ...cfg, inference_mode: true };
  }

  /** Loads a PEFT folder's tensors into adapter `adapter` (which must exist with matching shapes). */
  loadAdapterWeights(dir: string, adapter = this.activeAdapter): Record<string, unknown> {
    const { config, tensors } = readAdapterFolder(dir);
    const stripped = new Map<string, RawTensor>();
    for (const [k, v] of tensors) stripped.set(k.startsWith(KEY_PREFIX) ? k.slice(KEY_PREFIX.length) : k, v);
    noGrad(() => {
      // modules_to_save first: whole tensors of the base model
      const baseParams = new Map(this.base.namedParameters());
      for (const [k, raw] of [...stripped]) {
        const p = baseParams.get(k);
        if (!p || !this.modulesToSave.some((m) => k.startsWith(`${m}.`))) continue;
        if (raw.shape.join() !== p.shape.join()) throw new TunekitError('ERR_SHAPE', `adapter tensor '${k}' is [${raw.shape}] but the model has [${p.shape}]`);
        const t = f32FromRaw(raw);
        p.assign(t);
        t.dispose();
        stripped.delete(k);
      }
      this.loadAdapterState(adapter, stripped);
    });
    return config;
  }
}

const PEFT_HEAD_ALIASES = new Set(['classifier', 'score']);

/**
 * Whether parameter `name` belongs to the modules_to_save entry `m`: its module path is `m` or
 * ends with `.m` (PEFT matches module names by suffix, so 'wpe' is 'transformer.wpe').
 */
export function savesParameter(m: string, name: string): boolean {
  const module = name.slice(0, Math.max(0, name.lastIndexOf('.')));
  return module === m || module.endsWith(`.${m}`) || name.startsWith(`${m}.`);
}
