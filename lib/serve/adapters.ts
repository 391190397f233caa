/**
 * The adapters a server holds on one base model, each in a numbered slot. An adapter's folder is
 * read through promises (the server keeps decoding meanwhile), then applied in one synchronous
 * block, between two forwards, by the project's own LoRA loader (the same config checks,
 * target resolution, rank_pattern / alpha_pattern and scale as `tunekit generate --adapter`),
 * its per-layer A, B and scale are taken out, and the targeted Linear layers of the base become
 * MultiLoraLinear layers holding every slot's A/B stacked.
 *
 * Only what one batched forward can apply per row is served: LoRA on dense linear layers.
 * Methods that change the input (prompt tuning, prefix tuning), replace modules
 * (modules_to_save), touch embeddings or use DoRA are refused by name before anything is loaded,
 * so a refused folder never changes the served base.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { TunekitError } from '../errors.js';
import type { Module } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import type { Tensor } from '../tensor/tensor.js';
import { keep } from '../tensor/scope.js';
import { noGrad } from '../autograd/tape.js';
import type { PretrainedModel } from '../models/common.js';
import { readAdapterConfig, readAdapterConfigSync, readAdapterFolder, readAdapterFolderSync, ADAPTER_WEIGHTS, type AdapterFolder } from '../peft/base/adapter_io.js';
import { LoraModel } from '../peft/lora/model.js';
import { LoraLinear } from '../peft/lora/layer.js';
import { LoraEmbedding } from '../peft/lora/embedding.js';
import { openSafetensors, openSafetensorsSync } from '../io/safetensors.js';
import { packLoraSlots } from '../tensor/lora_batched.js';
import { MultiLoraLinear, RowSlots } from './multi_lora.js';
import '../peft/index.js';

/** One layer's share of an adapter: A [r, in], B [out, r], scale. */
interface LayerWeights {
  A: Tensor;
  B: Tensor;
  scale: number;
}

/** What /v1/models and the metrics say of a loaded adapter. */
export interface AdapterInfo {
  name: string;
  slot: number;
  path: string;
  /** layers it adapts */
  layers: number;
  /** largest rank over its layers */
  rank: number;
}

interface Slot {
  info: AdapterInfo;
  weights: Map<string, LayerWeights>;
}

/** Adapter names: what an OpenAI `model` field may hold (letters, digits, . _ - : /), 1..128 characters. */
export const ADAPTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

const INTERNAL_NAME = '__tunekit_serve_loading__';

export class AdapterSet {
  /** the RowSlots every MultiLoraLinear of this model reads */
  readonly rowSlots = new RowSlots();
  private readonly slots: (Slot | null)[] = [];
  private readonly byName = new Map<string, number>();
  /** names whose folders are being read (load() before its slot is filled): they count against the limit */
  private readonly reading = new Set<string>();
  /** module path -> its serving layer, with where it hangs */
  private readonly layers = new Map<string, { parent: Module; child: string; layer: MultiLoraLinear }>();

  /**
   * @param model the served base (its targeted Linear layers are replaced in place)
   * @param maxAdapters most adapters loaded at once (ERR_LIMIT past it)
   */
  constructor(private readonly model: PretrainedModel, private readonly maxAdapters = 64) {}

  /** Loaded adapters, by slot order. */
  list(): AdapterInfo[] {
    return this.slots.filter((s): s is Slot => s !== null).map((s) => ({ ...s.info }));
  }

  /** The slot of a loaded adapter, or undefined. */
  slotOf(name: string): number | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /**
   * Loads a PEFT LoRA folder into a free slot under `name`. The files are read through promises
   * (forwards go on meanwhile); the slot is filled in one synchronous block after the last read.
   * @example await adapters.load('sql', 'runs/sql/adapter') // -> { name: 'sql', slot: 0, ... }
   */
  async load(name: string, dir: string): Promise<AdapterInfo> {
    this.checkLoadable(name);
    // the name is taken while the files are read: a second load of it, or one past the limit, is refused now
    this.reading.add(name);
    try {
      await checkServable(dir);
      const folder = await readAdapterFolder(dir);
      return this.install(name, dir, folder);
    } finally {
      this.reading.delete(name);
    }
  }

  /**
   * The blocking form of {@link load}: the same checks and slot. Call it between forwards.
   * @example adapters.loadSync('sql', 'runs/sql/adapter')
   */
  loadSync(name: string, dir: string): AdapterInfo {
    this.checkLoadable(name);
    checkServableSync(dir);
    return this.install(name, dir, readAdapterFolderSync(dir));
  }

  private checkLoadable(name: string): void {
    if (typeof name !== 'string' || !ADAPTER_NAME.test(name)) {
      throw new TunekitError('ERR_VALUE', `adapter name ${JSON.stringify(name)}: expected 1-128 characters of letters, digits and . _ - : / (starting with a letter or digit)`);
    }
    if (this.byName.has(name) || this.reading.has(name)) throw new TunekitError('ERR_VALUE', `adapter '${name}' is already loaded (unload it first to replace it)`);
    const held = this.byName.size + this.reading.size;
    if (held >= this.maxAdapters) throw new TunekitError('ERR_LIMIT', `adapter '${name}': ${held} adapters are loaded or loading, the most this server holds (max_adapters ${this.maxAdapters}); unload one first`);
  }

  /** Fills a free slot with a folder already read and checked (synchronous: between two forwards). */
  private install(name: string, dir: string, folder: AdapterFolder): AdapterInfo {
    const weights = this.harvest(dir, folder);
    let slot = this.slots.indexOf(null);
    if (slot < 0) slot = this.slots.push(null) - 1;
    const rank = Math.max(0, ...[...weights.values()].map((w) => w.A.shape[0]!));
    const info: AdapterInfo = { name, slot, path: dir, layers: weights.size, rank };
    this.slots[slot] = { info, weights };
    this.byName.set(name, slot);
    this.repack();
    return { ...info };
  }

  /**
   * Frees a slot (the caller makes sure no sequence still uses it) and its tensors.
   * @example adapters.unload('sql')
   */
  unload(name: string): void {
    const slot = this.byName.get(name);
    if (slot === undefined) throw new TunekitError('ERR_NOT_FOUND', `no adapter '${name}' is loaded`);
    const s = this.slots[slot]!;
    for (const w of s.weights.values()) {
      w.A.dispose();
      w.B.dispose();
    }
    this.slots[slot] = null;
    this.byName.delete(name);
    while (this.slots.length && this.slots[this.slots.length - 1] === null) this.slots.pop();
    this.repack();
  }

  /** Frees every adapter and puts the plain Linear layers back into the model. */
  dispose(): void {
    for (const name of [...this.byName.keys()]) this.unload(name);
    this.unwrapAll();
    for (const { layer } of this.layers.values()) layer.setPack(null);
    this.layers.clear();
    this.rowSlots.end();
  }

  /**
   * Runs the LoRA loader on the plain base (serving layers swapped back to their Linear first)
   * with a folder already read, and takes each LoRA layer's A, B and scale out; the model's
   * structure is restored whatever happens.
   */
  private harvest(dir: string, folder: AdapterFolder): Map<string, LayerWeights> {
    const out = new Map<string, LayerWeights>();
    this.unwrapAll();
    try {
      // peft_type LORA was checked: LoRA's own loader reads it
      const loaded = LoraFolderLoader.loadRead(this.model, folder, dir, INTERNAL_NAME);
      for (const [path, layer] of loaded.layers) {
        if (!(layer instanceof LoraLinear) || !(layer.base_layer instanceof Linear)) {
          throw new TunekitError('ERR_UNSUPPORTED', `${dir}: LoRA on '${path}' (${layer.constructor.name} over ${layer.base_layer.constructor.name}) cannot be batched per row; tunekit serve applies LoRA on dense linear layers (merge this adapter with tunekit merge to serve it)`);
        }
        const ad = layer.adapters.get(INTERNAL_NAME)!;
        noGrad(() => out.set(path, { A: keep(ad.A.clone()), B: keep(ad.B.clone()), scale: ad.scale }));
      }
    } catch (e) {
      for (const w of out.values()) {
        w.A.dispose();
        w.B.dispose();
      }
      out.clear();
      throw e;
    } finally {
      // also after a loader that failed half-way: no LoRA wrapper may stay in the served model
      this.removeLoraWrappers();
      this.wrapAll([...out.keys()]);
    }
    return out;
  }

  /** Puts back the base layer of every LoRA wrapper the loader left in the model, freeing its A/B. */
  private removeLoraWrappers(): void {
    for (const [, parent] of this.model.namedModules()) {
      for (const [child, m] of parent.children()) {
        if (!(m instanceof LoraLinear || m instanceof LoraEmbedding)) continue;
        parent.replaceChild(child, m.base_layer);
        for (const ad of m.adapters.values()) {
          ad.A.dispose();
          ad.B.dispose();
        }
      }
    }
  }

  private unwrapAll(): void {
    for (const { parent, child, layer } of this.layers.values()) parent.replaceChild(child, layer.base_layer);
  }

  /** Puts the serving layers back (creating them for `newPaths` that have none yet). */
  private wrapAll(newPaths: string[]): void {
    const modules = new Map(this.model.namedModules());
    for (const path of newPaths) {
      if (this.layers.has(path)) continue;
      const cut = path.lastIndexOf('.');
      const parent = modules.get(cut < 0 ? '' : path.slice(0, cut));
      const base = modules.get(path);
      if (!parent || !(base instanceof Linear)) continue; // checked by harvest before it gets here
      this.layers.set(path, { parent, child: path.slice(cut + 1), layer: new MultiLoraLinear(base, this.rowSlots) });
    }
    for (const { parent, child, layer } of this.layers.values()) parent.replaceChild(child, layer);
  }

  /** Rebuilds every serving layer's stacked A/B from the slots. */
  private repack(): void {
    for (const [path, { layer }] of this.layers) {
      const perSlot = this.slots.map((s) => {
        const w = s?.weights.get(path);
        return w ? { A: w.A, B: w.B, scale: w.scale } : null;
      });
      // beside the layer's weight: a GPU's memory when the model was moved there
      layer.setPack(perSlot.some(Boolean) ? packLoraSlots(perSlot, layer.inFeatures, layer.outFeatures, layer.base_layer.weight.device) : null);
    }
  }
}

/**
 * Refuses, before anything is loaded, a folder whose adapter one batched forward cannot apply
 * per row, naming why: another method, DoRA, modules_to_save, or tensors other than the LoRA
 * layers' A and B (PEFT writes base embedding weights when embeddings are targeted; loading
 * those would overwrite the base every other request shares).
 */
async function checkServable(dir: string): Promise<void> {
  checkServableConfig(dir, await readAdapterConfig(dir));
  const weights = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(weights)) throw new TunekitError('ERR_NOT_FOUND', `no ${ADAPTER_WEIGHTS} in ${dir}`);
  const file = await openSafetensors(weights); // the header only
  try {
    checkServableNames(dir, file.names);
  } finally {
    await file.close();
  }
}

/** The blocking form of {@link checkServable}. */
function checkServableSync(dir: string): void {
  checkServableConfig(dir, readAdapterConfigSync(dir));
  const weights = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(weights)) throw new TunekitError('ERR_NOT_FOUND', `no ${ADAPTER_WEIGHTS} in ${dir}`);
  const file = openSafetensorsSync(weights);
  try {
    checkServableNames(dir, file.names);
  } finally {
    file.close();
  }
}

function checkServableConfig(dir: string, cfg: Record<string, unknown>): void {
  if (cfg.peft_type !== 'LORA') {
    throw new TunekitError('ERR_UNSUPPORTED', `${dir} holds a ${String(cfg.peft_type)} adapter; tunekit serve batches LoRA adapters per row (merge a LoRA-family adapter with tunekit merge, or use tunekit generate for prompt methods)`);
  }
  if (cfg.use_dora === true) throw new TunekitError('ERR_UNSUPPORTED', `${dir}: DoRA adapters (use_dora: true) are not served`);
  const mts = cfg.modules_to_save;
  if (Array.isArray(mts) && mts.length > 0) {
    throw new TunekitError('ERR_UNSUPPORTED', `${dir}: modules_to_save ${JSON.stringify(mts)} replaces whole modules of the base, which one shared batch cannot do per request; merge this adapter with tunekit merge and serve the merged model`);
  }
}

function checkServableNames(dir: string, names: readonly string[]): void {
  const other = names.filter((n) => !/\.lora_[AB]\.weight$/.test(n));
  if (other.length) {
    throw new TunekitError('ERR_UNSUPPORTED', `${dir}: tensors other than LoRA A/B of linear layers (${other.slice(0, 3).join(', ')}${other.length > 3 ? ', ...' : ''}); embedding LoRA and saved base weights are not served`);
  }
}

/** LoRA's folder loader, applied to a folder already read (never instantiated). */
class LoraFolderLoader extends LoraModel {
  static loadRead(base: PretrainedModel, folder: AdapterFolder, dir: string, adapterName: string): LoraModel {
    return LoraModel.fromAdapterFolder(base, folder, dir, adapterName);
  }
}
