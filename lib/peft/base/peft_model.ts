/**
 * PeftModel: a pretrained model plus one or more named adapters of one method. It forwards like
 * the model, trains only adapter parameters (and modules_to_save), and saves/loads PEFT folders.
 */
import { Module } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { ModelInputs, ModelOutput, PretrainedModel } from '../../models/common.js';
import { rawFromTensor, f32FromRaw } from '../../models/weights.js';
import { TunekitError } from '../../errors.js';
import { writeAdapterFolder, writeAdapterFolderSync, readAdapterFolder, readAdapterFolderSync, KEY_PREFIX, type AdapterFolder } from './adapter_io.js';
import { noGrad } from '../../autograd/tape.js';
import { keep } from '../../tensor/scope.js';
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

  /**
   * @param modulesToSave the config's modules_to_save (names or paths); PEFT's classification
   *   head names are added for seq_cls / token_cls, as PEFT does
   */
  constructor(base: PretrainedModel, adapterName: string, modulesToSave: readonly string[]) {
    super();
    this.base = this.module('base_model', base);
    this.activeAdapter = adapterName;
    this.modulesToSave = withPeftHeads(modulesToSave, base.task);
  }

  /**
   * Prefix of base-model tensors (modules_to_save, LoRA tensors) in the adapter file. PEFT's
   * tuners (LoRA, AdaLoRA) hold the model in a BaseTuner, `base_model.model.<path>`; the
   * prompt-learning methods override this with `base_model.<path>`.
   */
  protected get fileKeyPrefix(): string {
    return KEY_PREFIX;
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
      if (!PEFT_CLASSIFIER_MODULES.includes(m) && !params.some(([name]) => savesParameter(m, name))) {
        throw new TunekitError('ERR_CONFIG', `modules_to_save: '${m}' names no module of this ${this.base.config.modelType} model (a module path such as 'transformer.wpe', or its last part 'wpe')`);
      }
    }
    for (const [name, p] of params) {
      if (!this.modulesToSave.some((m) => savesParameter(m, name))) continue;
      p.requiresGrad = true;
      // PEFT's ModulesToSaveWrapper trains a copy and keeps the original module: disabling the
      // adapters (a DPO/PPO reference) must give the base model's own head back
      if (!this.originalSaved.has(name)) this.originalSaved.set(name, noGrad(() => keep(p.clone())));
    }
  }

  /** Base values of the modules_to_save parameters, by path (the disabled model uses them). */
  private readonly originalSaved = new Map<string, Tensor>();

  override dispose(): void {
    super.dispose();
    this.disposeSavedOriginals();
  }

  /** Frees the base copies of the modules_to_save (mergeAndUnload: the wrapper is done). */
  protected disposeSavedOriginals(): void {
    for (const t of this.originalSaved.values()) t.dispose();
    this.originalSaved.clear();
  }

  /**
   * Puts the original (base) modules_to_save tensors into the model, or the trained ones back;
   * returns the undo. O(1) per parameter: tensors are swapped, not copied.
   */
  private swapInOriginals(): () => void {
    const owners = new Map(this.base.namedModules());
    const undo: (() => void)[] = [];
    for (const [name, orig] of this.originalSaved) {
      const cut = name.lastIndexOf('.');
      const owner = owners.get(name.slice(0, cut));
      const leaf = name.slice(cut + 1);
      const live = owner?.namedParameters().find(([n]) => n === leaf)?.[1];
      if (!owner || !live || live === orig) continue;
      const flag = live.requiresGrad;
      owner.setParam(leaf, orig, true);
      orig.requiresGrad = false;
      undo.push(() => {
        owner.setParam(leaf, live, true);
        live.requiresGrad = flag;
      });
    }
    return () => undo.reverse().forEach((f) => f());
  }

  /**
   * Base-model tensors a method writes beside its adapter (keys without the file prefix): none by
   * default; LoRA writes targeted embedding layers' base weights as PEFT does.
   */
  protected savedBaseTensors(_adapter: string): Map<string, Tensor> {
    return new Map();
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
    const restore = prev ? () => undefined : this.swapInOriginals();
    try {
      return fn();
    } finally {
      restore();
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
   * What a saved PEFT folder holds for one adapter: adapter_config.json's content and the
   * tensors (copied out of native memory). Methods that write other tensors (prompt learning) or
   * check first (AdaLoRA) override this, and both save forms follow.
   */
  protected adapterFolderContent(adapter: string): { config: Record<string, unknown>; tensors: RawTensor[] } {
    const cfg = this.adapterConfigs.get(adapter);
    if (!cfg) throw new TunekitError('ERR_VALUE', `no adapter named '${adapter}'`);
    const tensors: RawTensor[] = [];
    for (const [key, t] of this.adapterStateDict(adapter)) tensors.push(rawFromTensor(this.fileKeyPrefix + key, t, 'f32'));
    for (const [key, t] of this.savedBaseTensors(adapter)) tensors.push(rawFromTensor(this.fileKeyPrefix + key, t, 'f32'));
    for (const [name, p] of this.savedModuleParams()) tensors.push(rawFromTensor(this.fileKeyPrefix + name, p, 'f32'));
    return { config: this.adapterFileConfig(cfg), tensors };
  }

  /**
   * Writes a PEFT folder for one adapter (default: the active one), loadable by Python PEFT,
   * through fs/promises (the tensors are copied out first: training may go on meanwhile).
   * @example await peftModel.saveAdapter('out/adapter')
   */
  async saveAdapter(dir: string, adapter = this.activeAdapter): Promise<void> {
    const { config, tensors } = this.adapterFolderContent(adapter);
    await writeAdapterFolder(dir, config, tensors);
  }

  /**
   * {@link saveAdapter} with blocking writes.
   * @example peftModel.saveAdapterSync('out/adapter')
   */
  saveAdapterSync(dir: string, adapter = this.activeAdapter): void {
    const { config, tensors } = this.adapterFolderContent(adapter);
    writeAdapterFolderSync(dir, config, tensors);
  }

  /**
   * Method-specific results written after a training run into its folder; returns lines for the
   * log (none by default; AdaLoRA: the kept ranks per layer and ranks.svg). Files are written
   * through fs/promises.
   */
  async writeRunReport(_outputDir: string): Promise<string[]> {
    return [];
  }

  /**
   * The adapter_config.json written for a config (methods map tunekit-only values to PEFT's
   * here). modules_to_save lists what the file holds, PEFT's head names included, as PEFT writes
   * it (null when empty).
   */
  protected adapterFileConfig(cfg: object): Record<string, unknown> {
    const own = (cfg as { modules_to_save?: string[] | null }).modules_to_save ?? [];
    const toSave = withPeftHeads(own, this.base.task);
    return { ...cfg, modules_to_save: toSave.length ? toSave : null, inference_mode: true };
  }

  /**
   * Loads a PEFT folder's tensors into adapter `adapter` (which must exist with matching shapes),
   * read through fs/promises; returns the folder's adapter_config.json.
   * @example await peftModel.loadAdapterWeights('runs/x/checkpoint/adapter')
   */
  async loadAdapterWeights(dir: string, adapter = this.activeAdapter): Promise<Record<string, unknown>> {
    return this.applyAdapterFolder(await readAdapterFolder(dir), adapter);
  }

  /**
   * {@link loadAdapterWeights} with blocking reads.
   * @example peftModel.loadAdapterWeightsSync('runs/x/checkpoint/adapter')
   */
  loadAdapterWeightsSync(dir: string, adapter = this.activeAdapter): Record<string, unknown> {
    return this.applyAdapterFolder(readAdapterFolderSync(dir), adapter);
  }

  /** Copies a folder's tensors, as read, into adapter `adapter`; returns its config. */
  protected applyAdapterFolder(folder: AdapterFolder, adapter: string): Record<string, unknown> {
    const { config, tensors } = folder;
    const prefix = this.fileKeyPrefix;
    const rest = new Map<string, RawTensor>();
    noGrad(() => {
      // modules_to_save first: whole tensors of the base model, matched as PEFT matches them
      const saved = new Map(this.savedModuleParams());
      for (const [key, raw] of tensors) {
        const name = this.savedModuleName(key, saved);
        const p = name === null ? undefined : saved.get(name);
        if (!p) {
          rest.set(key.startsWith(prefix) ? key.slice(prefix.length) : key, raw);
          continue;
        }
        if (raw.shape.join() !== p.shape.join()) throw new TunekitError('ERR_SHAPE', `adapter tensor '${key}' is [${raw.shape}] but the model's ${name} is [${p.shape}]`);
        const t = f32FromRaw(raw);
        p.assign(t);
        t.dispose();
      }
      this.loadAdapterState(adapter, rest);
    });
    return config;
  }

  /**
   * The modules_to_save parameter a file key holds, or null. Keys are `<fileKeyPrefix><path>`;
   * prompt-learning folders written by tunekit before it used PEFT's `base_model.<path>` have
   * `base_model.model.<path>`, which is read too (PEFT cannot read those).
   */
  private savedModuleName(key: string, saved: Map<string, Tensor>): string | null {
    const prefix = this.fileKeyPrefix;
    if (key.startsWith(prefix) && saved.has(key.slice(prefix.length))) return key.slice(prefix.length);
    if (prefix !== KEY_PREFIX && key.startsWith(KEY_PREFIX) && saved.has(key.slice(KEY_PREFIX.length))) return key.slice(KEY_PREFIX.length);
    return null;
  }
}

/**
 * The head modules PEFT adds to modules_to_save for classification (PeftModelForSequenceClassification
 * and PeftModelForTokenClassification extend it with both names whatever the model: one of them
 * exists in each architecture).
 */
export const PEFT_CLASSIFIER_MODULES: readonly string[] = ['classifier', 'score'];

/** A config's modules_to_save with PEFT's head names added for seq_cls / token_cls (no duplicates). */
export function withPeftHeads(modulesToSave: readonly string[], task: string): string[] {
  // image classification: PEFT's image examples name the head themselves, modules_to_save=["classifier"]
  const heads = task === 'seq_cls' || task === 'token_cls' ? PEFT_CLASSIFIER_MODULES : task === 'image_cls' ? ['classifier'] : [];
  return [...new Set([...modulesToSave, ...heads])];
}

/**
 * Whether parameter `name` belongs to the modules_to_save entry `m`, by PEFT's rule
 * (utils/other.py _set_trainable: a module whose path `key.endswith(m)` is wrapped whole, so
 * every parameter under it is trained and saved). So 'wpe' and 'transformer.wpe' both select
 * `transformer.wpe.weight`; the match is on the plain string, as in PEFT.
 * @example savesParameter('wpe', 'transformer.wpe.weight') // true
 */
export function savesParameter(m: string, name: string): boolean {
  const parts = name.split('.');
  // the module paths above the parameter: "a", "a.b", ... (the last part is the tensor's own name)
  for (let i = 1; i < parts.length; i++) {
    if (parts.slice(0, i).join('.').endsWith(m)) return true;
  }
  return false;
}
