/**
 * Prompt tuning (Lester et al. 2021; PEFT's PROMPT_TUNING): P learnable virtual token
 * embeddings [P, C] put before the input embeddings. Initialised RANDOM (N(0, 1), as
 * torch.nn.Embedding), SAMPLE_VOCAB (rows of the model's token table at seeded random ids) or
 * TEXT (the embeddings of prompt_tuning_init_text's tokens, repeated or cut to P, as PEFT).
 */
import { PromptEncoder, PromptLearningModel } from '../prompt/prompt_model.js';
import { PromptTable } from '../prompt/layers.js';
import { normalizePromptTuningConfig, type PromptTuningConfig } from './config.js';
import { Tensor } from '../../tensor/tensor.js';
import { tensor } from '../../tensor/creation.js';
import { noGrad } from '../../autograd/tape.js';
import * as F from '../../autograd/ops.js';
import { nextSeed } from '../../nn/random.js';
import { Rng } from '../../data/rng.js';
import { Tokenizer } from '../../tokenizer/tokenizer.js';
import { readAdapterFolder, readAdapterFolderSync, type AdapterFolder } from '../base/adapter_io.js';
import type { PretrainedModel } from '../../models/common.js';
import type { TokenizerLike } from '../../data/types.js';
import { TunekitError } from '../../errors.js';

/** Extra creation options (not saved to adapter_config.json). */
export interface PromptTuningOptions {
  /**
   * tokenizer for TEXT init: a `Tokenizer`, or any object with a TokenizerLike's `encode` (else
   * tokenizer_name_or_path is opened as a tokenizer folder)
   */
  tokenizer?: Pick<TokenizerLike, 'encode'>;
  /** seed of SAMPLE_VOCAB's token draw and RANDOM's values (default: the global seed stream) */
  seed?: number;
}

/** The virtual embeddings themselves ([P, C] parameter `embedding.weight`). */
export class PromptEmbedding extends PromptEncoder {
  embedding: PromptTable;
  constructor(P: number, C: number, values?: Tensor, seed?: number) {
    super();
    this.embedding = this.module('embedding', new PromptTable(P, C, { values, seed }));
  }
  forward(): Tensor<'f32'> {
    return this.embedding.weight as Tensor<'f32'>;
  }
}

/** PEFT's TEXT rule: cut to P tokens, or repeat ceil(P / n) times and cut. */
export function initTokenIds(ids: readonly number[], P: number): number[] {
  if (ids.length === 0) throw new TunekitError('ERR_CONFIG', 'prompt_tuning_init_text tokenizes to no tokens');
  const reps = Math.ceil(P / ids.length);
  return (ids.length >= P ? [...ids] : new Array<number[]>(reps).fill([...ids]).flat()).slice(0, P);
}

function rowsOf(model: PretrainedModel, ids: number[]): Tensor {
  return noGrad(() => {
    const idx = tensor(Int32Array.from(ids), [ids.length], 'i32') as Tensor<'i32'>;
    const rows = F.embedding(model.tokenEmbeddings(), idx);
    idx.dispose();
    return rows.castRaw('f32');
  });
}

export class PromptTuningModel extends PromptLearningModel {
  /**
   * Wraps `base` as the constructor does; a TEXT init with tokenizer_name_or_path (and no
   * `tokenizer`) reads that tokenizer folder through fs/promises instead of blocking
   * (`Tokenizer.fromFolder`; parsing it is still one block, 30-70 ms for 8,192 tokens).
   * @example const pt = await PromptTuningModel.create(base, { prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'Classify:', tokenizer_name_or_path: 'models/x' });
   */
  static async create(base: PretrainedModel, config: Record<string, unknown>, adapterName = 'default', opts: PromptTuningOptions = {}): Promise<PromptTuningModel> {
    const { tokenizer, seed: _seed, ...rest } = config as Record<string, unknown> & PromptTuningOptions;
    // validated first: a bad config fails before any read
    const cfg = normalizePromptTuningConfig(rest, base);
    const folder = !cfg.inference_mode && cfg.prompt_tuning_init === 'TEXT' && !opts.tokenizer && !tokenizer ? cfg.tokenizer_name_or_path : null;
    return new PromptTuningModel(base, config, adapterName, folder ? { ...opts, tokenizer: await Tokenizer.fromFolder(folder) } : opts);
  }

  /**
   * A TEXT init with tokenizer_name_or_path and no `tokenizer` reads that folder with blocking
   * reads (`Tokenizer.fromFolderSync`); {@link PromptTuningModel.create} reads it through promises.
   */
  constructor(base: PretrainedModel, config: Record<string, unknown>, adapterName = 'default', opts: PromptTuningOptions = {}) {
    const { tokenizer, seed, ...rest } = config as Record<string, unknown> & PromptTuningOptions;
    const cfg = normalizePromptTuningConfig(rest, base);
    const P = cfg.num_virtual_tokens, C = cfg.token_dim;
    const tok = opts.tokenizer ?? (tokenizer as Pick<TokenizerLike, 'encode'> | undefined);
    const s = opts.seed ?? (seed as number | undefined);
    let values: Tensor | undefined;
    if (!cfg.inference_mode && cfg.prompt_tuning_init === 'SAMPLE_VOCAB') {
      const rng = new Rng(s ?? nextSeed());
      const V = base.tokenEmbeddings().shape[0]!;
      values = rowsOf(base, Array.from({ length: P }, () => Math.floor(rng.nextFloat() * V)));
    } else if (!cfg.inference_mode && cfg.prompt_tuning_init === 'TEXT') {
      const enc = tok ?? (cfg.tokenizer_name_or_path ? Tokenizer.fromFolderSync(cfg.tokenizer_name_or_path) : null);
      if (!enc) throw new TunekitError('ERR_CONFIG', 'prompt_tuning TEXT init needs a tokenizer: pass `tokenizer` or set tokenizer_name_or_path to a tokenizer folder');
      values = rowsOf(base, initTokenIds(enc.encode(cfg.prompt_tuning_init_text!).ids, P));
    }
    super(base, adapterName, cfg as PromptTuningConfig & Record<string, unknown>, 'embeds', new PromptEmbedding(P, C, values, s));
  }

  /**
   * Loads a PEFT PROMPT_TUNING folder (its saved embeddings are used directly).
   * The folder is read through fs/promises.
   * @example const pt = await PromptTuningModel.fromPretrained(base, 'out/adapter');
   */
  static async fromPretrained(base: PretrainedModel, dir: string, adapterName = 'default'): Promise<PromptTuningModel> {
    return PromptTuningModel.fromAdapterFolder(base, await readAdapterFolder(dir), dir, adapterName);
  }

  /**
   * {@link PromptTuningModel.fromPretrained} with blocking reads.
   * @example const pt = PromptTuningModel.fromPretrainedSync(base, 'out/adapter');
   */
  static fromPretrainedSync(base: PretrainedModel, dir: string, adapterName = 'default'): PromptTuningModel {
    return PromptTuningModel.fromAdapterFolder(base, readAdapterFolderSync(dir), dir, adapterName);
  }

  /** A PromptTuningModel over `base` holding a folder's adapter, as read from `dir`. */
  protected static fromAdapterFolder(base: PretrainedModel, folder: AdapterFolder, dir: string, adapterName: string): PromptTuningModel {
    const { config } = folder;
    if (config.peft_type !== 'PROMPT_TUNING') throw new TunekitError('ERR_FORMAT', `${dir} holds a ${String(config.peft_type)} adapter, not PROMPT_TUNING`);
    const m = new PromptTuningModel(base, { ...config, inference_mode: true }, adapterName);
    m.applyAdapterFolder(folder, adapterName);
    m.adapterConfigs.set(adapterName, { ...m.adapterConfigs.get(adapterName), ...config, inference_mode: false });
    return m;
  }
}
