/**
 * LoRA on a pretrained model (PEFT's LoraModel): target linear layers are wrapped in LoraLinear;
 * only adapter parameters (and modules_to_save) train; merge/unmerge, enable/disable, several
 * named adapters, PEFT folders in and out.
 */
import { PeftModel } from '../base/peft_model.js';
import { findTargets, patternValue, matchesTarget, isTarget } from '../base/targets.js';
import { readAdapterFolder, readAdapterFolderSync, type AdapterFolder } from '../base/adapter_io.js';
import { LoraLinear } from './layer.js';
import { LoraEmbedding } from './embedding.js';
import { LoraConv2d } from './conv.js';
import { Conv2d } from '../../nn/conv.js';
import { normalizeLoraConfig, type LoraConfig } from './config.js';
import { f32FromRaw } from '../../models/weights.js';
import { Linear, Embedding } from '../../nn/layers.js';
import type { Module } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { ModelInputs, ModelOutput, PretrainedModel } from '../../models/common.js';
import type { RawTensor } from '../../io/safetensors.js';
import { TunekitError } from '../../errors.js';
import { NF4Linear } from '../../quant/nf4_linear.js';

export class LoraModel extends PeftModel {
  /** module path -> its LoRA layer */
  /** module path -> its LoRA layer (linear layers, and embedding tables when targeted by name) */
  readonly layers = new Map<string, LoraLinear | LoraEmbedding | LoraConv2d>();

  constructor(base: PretrainedModel, config: Record<string, unknown>, adapterName = 'default') {
    // the subclass's schema (AdaLoRA's) parses its own config: LoRA's would refuse its fields
    const cfg = (new.target as typeof LoraModel).configFor(config, base);
    super(base, adapterName, cfg.modules_to_save ?? []);
    // the wrapper and its new LoRA layers take the base model's mode (eval after loadPretrainedSync:
    // no lora_dropout at inference until a trainer calls train())
    this.training = base.training;
    this.addAdapter(adapterName, cfg);
  }

  /**
   * The method's config for `base`: its schema's parse (PEFT's defaults) plus the model step
   * (target_modules, task_type). Subclasses with their own schema override it.
   */
  protected static configFor(config: unknown, base: PretrainedModel): { modules_to_save: string[] | null } {
    return normalizeLoraConfig(config, base.config.modelType, base.task);
  }

  /**
   * Adds another named adapter on its own targets (existing LoraLinear layers are reused).
   * @example model.addAdapter('other', { r: 4, lora_alpha: 8 })
   */
  addAdapter(name: string, config: Record<string, unknown> | LoraConfig): void {
    if (this.adapterConfigs.has(name)) throw new TunekitError('ERR_VALUE', `adapter '${name}' already exists`);
    const cfg = normalizeLoraConfig(config as Record<string, unknown>, this.base.config.modelType, this.base.task);
    const expectInOut = cfg.fan_in_fan_out;
    const already = [...this.layers.keys()].filter((p) => this.wrappedMatches(p, cfg));
    const targets = findTargets(this.base, cfg.target_modules!, cfg.layers_to_transform, { allowEmpty: already.length > 0, embeddings: true, convolutions: true, layersPattern: cfg.layers_pattern });
    for (const t of targets) this.wrap(t.name, t.parent, t.child, t.module);
    // wrapped layers are found through their LoraLinear parent now
    for (const [path, layer] of this.layers) {
      const hit = targets.some((t) => t.name === path) || this.wrappedMatches(path, cfg);
      if (!hit) continue;
      if (layer instanceof LoraLinear && (layer.base_layer.layout === 'in_out') !== expectInOut) {
        // PEFT warns and corrects fan_in_fan_out for Conv1D; we follow the layer's real layout
        cfg.fan_in_fan_out = layer.base_layer.layout === 'in_out';
      }
      const r = patternValue(path, cfg.rank_pattern, cfg.r);
      const alpha = patternValue(path, cfg.alpha_pattern, cfg.lora_alpha);
      layer.addAdapter(name, { r, alpha, dropout: cfg.lora_dropout, rslora: cfg.use_rslora, init: cfg.init_lora_weights });
    }
    // as PEFT does, 'all-linear' is saved as the resolved list of module paths, so that a loader
    // with other exclusion rules (PEFT keeps BERT's pooler, for one) adapts exactly these layers
    if (typeof cfg.target_modules === 'string' && cfg.target_modules.toLowerCase() === 'all-linear') {
      cfg.target_modules = [...this.layers].filter(([, l]) => l.adapters.has(name)).map(([p]) => p).sort();
    }
    this.adapterConfigs.set(name, { ...cfg });
    this.setAdapter(this.activeAdapter ?? name);
  }

  /** Whether an already wrapped layer is a target of `cfg` (same rules as findTargets). */
  private wrappedMatches(path: string, cfg: LoraConfig): boolean {
    return isTarget(path, { ...cfg, target_modules: cfg.target_modules! });
  }

  private wrap(path: string, parent: Module, child: string, lin: Linear | Embedding | Conv2d): void {
    if (this.layers.has(path)) return;
    // PEFT's lora.Conv2d for convolutions (lib/peft/lora/conv.ts)
    const layer = lin instanceof Embedding ? new LoraEmbedding(lin) : lin instanceof Conv2d ? new LoraConv2d(lin, path) : new LoraLinear(lin);
    layer.train(lin.training);
    parent.replaceChild(child, layer);
    this.layers.set(path, layer);
  }

  /** Makes `name` the active (and trainable) adapter. */
  setAdapter(name: string): void {
    if (!this.adapterConfigs.has(name)) throw new TunekitError('ERR_VALUE', `no adapter named '${name}' (have ${[...this.adapterConfigs.keys()].join(', ')})`);
    this.activeAdapter = name;
    for (const layer of this.layers.values()) layer.active = layer.adapters.has(name) ? name : null;
    const params: Tensor[] = [];
    // inference_mode: the adapter is frozen, as PEFT freezes it
    const trains = this.adapterConfigs.get(name)!.inference_mode !== true;
    for (const layer of this.layers.values()) {
      for (const [n, ad] of layer.adapters) {
        ad.A.requiresGrad = n === name && trains;
        ad.B.requiresGrad = n === name && trains;
        if (n === name && trains) params.push(ad.A, ad.B);
      }
    }
    this.markTrainable(params);
  }

  forward(inputs: ModelInputs): ModelOutput {
    for (const layer of this.layers.values()) layer.disabled = this.adaptersDisabled;
    return this.base.forward(inputs);
  }

  /** Folds the active adapter into the base weights (forward unchanged, faster inference). */
  merge(): void {
    for (const layer of this.layers.values()) if (layer.adapters.has(this.activeAdapter)) layer.merge(this.activeAdapter);
  }

  unmerge(): void {
    for (const layer of this.layers.values()) layer.unmerge(this.activeAdapter);
  }

  /**
   * Merges the active adapter and returns the plain base model (LoRA layers removed), ready for
   * savePretrainedSync. This LoraModel must not be used afterwards.
   */
  mergeAndUnload(): PretrainedModel {
    this.merge();
    for (const [path, layer] of this.layers) {
      const parentPath = path.split('.').slice(0, -1).join('.');
      const child = path.split('.').pop()!;
      const parent = this.base.namedModules().find(([n]) => n === parentPath)![1];
      parent.replaceChild(child, layer.base_layer);
      for (const ad of layer.adapters.values()) {
        ad.A.dispose();
        ad.B.dispose();
      }
    }
    this.layers.clear();
    this.disposeSavedOriginals();
    return this.base;
  }

  protected adapterStateDict(adapter: string): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [path, layer] of this.layers) {
      const ad = layer.adapters.get(adapter);
      if (!ad) continue;
      // PEFT's embedding LoRA parameters have no `.weight` suffix
      if (layer instanceof LoraEmbedding) {
        out.set(`${path}.lora_embedding_A`, ad.A);
        out.set(`${path}.lora_embedding_B`, ad.B);
      } else {
        out.set(`${path}.lora_A.weight`, ad.A);
        out.set(`${path}.lora_B.weight`, ad.B);
      }
    }
    return out;
  }

  /**
   * PEFT's save_embedding_layers="auto" (utils/save_and_load.py): when target_modules names an
   * embedding layer ('embed_tokens' or 'lm_head' in the list, or a regex that selects a module
   * so named), PEFT also writes the base weights of the model's input and output embeddings that
   * carry a LoRA layer, as `<path>.base_layer.weight` (in case the vocabulary was resized). We
   * write the same keys.
   */
  protected override savedBaseTensors(adapter: string): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const cfg = this.adapterConfigs.get(adapter) as { target_modules?: unknown } | undefined;
    if (!cfg || !peftSavesEmbeddingLayers(cfg.target_modules, this.base)) return out;
    const inputTable = this.base.tokenEmbeddings();
    for (const [path, layer] of this.layers) {
      // get_input_embeddings(): the token table; get_output_embeddings(): the LM head `lm_head`
      const isInput = layer instanceof LoraEmbedding && layer.base_layer.weight === inputTable;
      const isOutput = path === 'lm_head';
      if (!isInput && !isOutput) continue;
      for (const [name, p] of layer.base_layer.namedParameters()) out.set(`${path}.base_layer.${name}`, p);
    }
    return out;
  }

  /**
   * Takes `<layer>.base_layer.<param>` tensors out of a loaded file and puts them into the LoRA
   * layers' base weights, as PEFT's load_state_dict does (PEFT writes them for targeted embedding
   * layers; see savedBaseTensors). A 4-bit (QLoRA) base cannot take a dense weight: refused.
   */
  protected loadBaseLayerTensors(tensors: Map<string, RawTensor>): void {
    for (const [path, layer] of this.layers) {
      const own = new Map(layer.base_layer.namedParameters());
      for (const [key, raw] of [...tensors]) {
        if (!key.startsWith(`${path}.base_layer.`)) continue;
        const name = key.slice(`${path}.base_layer.`.length);
        const p = own.get(name);
        if (!p) {
          if (layer.base_layer instanceof NF4Linear) throw new TunekitError('ERR_FORMAT', `adapter tensor '${key}' is a dense base weight, but ${path} is 4-bit (NF4) here: load the adapter on a dense base model`);
          throw new TunekitError('ERR_FORMAT', `adapter tensor '${key}': the base layer of ${path} has no parameter '${name}' (has ${[...own.keys()].join(', ')})`);
        }
        if (raw.shape.join() !== p.shape.join()) throw new TunekitError('ERR_SHAPE', `adapter tensor '${key}' is [${raw.shape}] but ${path}'s base layer has [${p.shape}] (a resized vocabulary must be resized in the base model first)`);
        const v = f32FromRaw(raw);
        p.assign(v);
        v.dispose();
        tensors.delete(key);
      }
    }
  }

  protected loadAdapterState(adapter: string, tensors: Map<string, RawTensor>): void {
    this.loadBaseLayerTensors(tensors);
    const want = this.adapterStateDict(adapter);
    for (const [key, t] of want) {
      const raw = tensors.get(key);
      if (!raw) throw new TunekitError('ERR_FORMAT', `adapter file lacks '${key}'`);
      if (raw.shape.join() !== t.shape.join()) throw new TunekitError('ERR_SHAPE', `adapter tensor '${key}' is [${raw.shape}] but the layer expects [${t.shape}]`);
      const v = f32FromRaw(raw);
      t.assign(v);
      v.dispose();
      tensors.delete(key);
    }
    if (tensors.size) throw new TunekitError('ERR_FORMAT', `adapter file has tensors that match no layer: ${[...tensors.keys()].slice(0, 5).join(', ')}`);
  }

  /**
   * Loads a PEFT LoRA folder onto a base model.
   * The folder is read through fs/promises.
   * @example const lora = await LoraModel.fromPretrained(base, 'out/adapter');
   */
  static async fromPretrained(base: PretrainedModel, dir: string, adapterName = 'default'): Promise<LoraModel> {
    return LoraModel.fromAdapterFolder(base, await readAdapterFolder(dir), dir, adapterName);
  }

  /**
   * {@link LoraModel.fromPretrained} with blocking reads.
   * @example const lora = LoraModel.fromPretrainedSync(base, 'out/adapter');
   */
  static fromPretrainedSync(base: PretrainedModel, dir: string, adapterName = 'default'): LoraModel {
    return LoraModel.fromAdapterFolder(base, readAdapterFolderSync(dir), dir, adapterName);
  }

  /** A LoraModel over `base` holding a folder's adapter, as read from `dir`. */
  protected static fromAdapterFolder(base: PretrainedModel, folder: AdapterFolder, dir: string, adapterName: string): LoraModel {
    const { config } = folder;
    if (config.peft_type !== 'LORA') throw new TunekitError('ERR_FORMAT', `${dir} holds a ${String(config.peft_type)} adapter, not LORA`);
    // loaded adapters train further (PEFT's is_trainable=True): the file's inference_mode is not applied
    const m = new LoraModel(base, { ...config, init_lora_weights: true, inference_mode: false }, adapterName);
    m.applyAdapterFolder(folder, adapterName);
    m.adapterConfigs.set(adapterName, { ...m.adapterConfigs.get(adapterName), ...config, inference_mode: false });
    return m;
  }
}

/**
 * Whether PEFT's save_embedding_layers="auto" is on for these target_modules: a list naming
 * 'embed_tokens' or 'lm_head' exactly (PEFT's EMBEDDING_LAYER_NAMES, tested by membership), or a
 * regex (not 'all-linear') that fully matches a module path ending in one of those names.
 */
export function peftSavesEmbeddingLayers(targetModules: unknown, model: Module): boolean {
  if (Array.isArray(targetModules)) return PEFT_EMBEDDING_LAYER_NAMES.some((n) => targetModules.includes(n));
  if (typeof targetModules !== 'string' || targetModules === 'all-linear') return false;
  return model.namedModules().some(([path]) => PEFT_EMBEDDING_PATH.test(path) && matchesTarget(path, targetModules));
}

const PEFT_EMBEDDING_LAYER_NAMES = ['embed_tokens', 'lm_head'];
const PEFT_EMBEDDING_PATH = /(^|\.)(embed_tokens|lm_head)$/;
