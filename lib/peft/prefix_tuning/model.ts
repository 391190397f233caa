/**
 * Prefix tuning (Li & Liang 2021; PEFT's PREFIX_TUNING): every layer attends over P learnable
 * key/value prefixes that skip the q/k/v projections and the rotary embedding; the real tokens'
 * positions start after them. The encoder output [P, L*2*C'] (C' = the key/value width: hidden
 * size, or head_dim * num_key_value_heads with grouped-query attention) is either a table or,
 * with prefix_projection, Embedding(P, C') -> Linear(C', h) -> Tanh -> Linear(h, L*2*C')
 * (`embedding`, `transform.{0,2}`). It is saved as `prompt_embeddings`.
 */
import { PromptEncoder, PromptLearningModel } from '../prompt/prompt_model.js';
import { PromptTable, Sequential } from '../prompt/layers.js';
import { normalizePrefixTuningConfig, type PrefixTuningConfig } from './config.js';
import { Tensor } from '../../tensor/tensor.js';
import { zeros } from '../../tensor/creation.js';
import { readAdapterFolder, readAdapterFolderSync, type AdapterFolder } from '../base/adapter_io.js';
import type { PretrainedModel } from '../../models/common.js';
import { TunekitError } from '../../errors.js';

/** PEFT's PrefixEncoder. */
export class PrefixEncoder extends PromptEncoder {
  embedding: PromptTable;
  transform: Sequential | null = null;
  constructor(readonly cfg: PrefixTuningConfig) {
    super();
    const P = cfg.num_virtual_tokens, C = cfg.token_dim, W = cfg.num_layers * 2 * C;
    const zero = cfg.init_weights === 'zero';
    if (cfg.prefix_projection && !cfg.inference_mode) {
      this.embedding = this.module('embedding', new PromptTable(P, C));
      this.transform = this.module('transform', new Sequential([C, cfg.encoder_hidden_size, W], 'tanh'));
      if (zero) {
        const last = this.transform.layers[1]!;
        last.setParam('weight', zeros(last.weight.shape));
        last.setParam('bias', zeros([W]));
      }
    } else {
      this.embedding = this.module('embedding', new PromptTable(P, W, { init: zero ? 'zero' : 'normal' }));
    }
  }
  forward(): Tensor<'f32'> {
    const e = this.embedding.weight as Tensor<'f32'>;
    return this.transform ? this.transform.forward(e) : e;
  }
}

export class PrefixTuningModel extends PromptLearningModel {
  constructor(base: PretrainedModel, config: Record<string, unknown>, adapterName = 'default') {
    const cfg = normalizePrefixTuningConfig(config, base);
    super(base, adapterName, cfg as PrefixTuningConfig & Record<string, unknown>, 'prefix', new PrefixEncoder(cfg));
  }

  /**
   * Loads a PEFT PREFIX_TUNING folder (the saved prefixes are used directly).
   * The folder is read through fs/promises.
   * @example const pt = await PrefixTuningModel.fromPretrained(base, 'out/adapter');
   */
  static async fromPretrained(base: PretrainedModel, dir: string, adapterName = 'default'): Promise<PrefixTuningModel> {
    return PrefixTuningModel.fromAdapterFolder(base, await readAdapterFolder(dir), dir, adapterName);
  }

  /**
   * {@link PrefixTuningModel.fromPretrained} with blocking reads.
   * @example const pt = PrefixTuningModel.fromPretrainedSync(base, 'out/adapter');
   */
  static fromPretrainedSync(base: PretrainedModel, dir: string, adapterName = 'default'): PrefixTuningModel {
    return PrefixTuningModel.fromAdapterFolder(base, readAdapterFolderSync(dir), dir, adapterName);
  }

  /** A PrefixTuningModel over `base` holding a folder's adapter, as read from `dir`. */
  protected static fromAdapterFolder(base: PretrainedModel, folder: AdapterFolder, dir: string, adapterName: string): PrefixTuningModel {
    const { config } = folder;
    if (config.peft_type !== 'PREFIX_TUNING') throw new TunekitError('ERR_FORMAT', `${dir} holds a ${String(config.peft_type)} adapter, not PREFIX_TUNING`);
    const m = new PrefixTuningModel(base, { ...config, inference_mode: true }, adapterName);
    m.applyAdapterFolder(folder, adapterName);
    m.adapterConfigs.set(adapterName, { ...m.adapterConfigs.get(adapterName), ...config, inference_mode: false });
    return m;
  }
}
