/**
 * P-tuning (Liu et al. 2021; PEFT's P_TUNING): the P virtual token embeddings come out of a
 * prompt encoder over a learnable [P, C] table:
 *  - MLP:  Linear(C, h) - ReLU - Linear(h, h) - ReLU - Linear(h, C)          (`mlp_head.{0,2,4}`)
 *  - LSTM: bidirectional LSTM(C -> h, encoder_num_layers layers, dropout encoder_dropout)
 *          then Linear(2h, 2h) - ReLU - Linear(2h, C)          (`lstm_head`, `mlp_head.{0,2}`)
 * They are placed like prompt tuning's. Saved as the encoder's output [P, C].
 */
import { PromptEncoder, PromptLearningModel, SavedPromptEncoder } from '../prompt/prompt_model.js';
import { PromptTable, Sequential } from '../prompt/layers.js';
import { normalizePTuningConfig, type PTuningConfig } from './config.js';
import { LSTM } from './lstm.js';
import { Tensor } from '../../tensor/tensor.js';
import { randn } from '../../tensor/creation.js';
import { nextSeed } from '../../nn/random.js';
import * as F from '../../autograd/ops.js';
import { readAdapterFolder, readAdapterFolderSync, type AdapterFolder } from '../base/adapter_io.js';
import type { PretrainedModel } from '../../models/common.js';
import { TunekitError } from '../../errors.js';

/** PEFT's PromptEncoder: table -> (LSTM) -> MLP, output [P, C]. */
export class PTuningEncoder extends PromptEncoder {
  embedding: PromptTable;
  lstm_head: LSTM | null = null;
  mlp_head: Sequential;
  constructor(readonly cfg: PTuningConfig) {
    super();
    const P = cfg.num_virtual_tokens, C = cfg.token_dim, h = cfg.encoder_hidden_size;
    this.embedding = this.module('embedding', new PromptTable(P, C));
    if (cfg.encoder_reparameterization_type === 'LSTM') {
      this.lstm_head = this.module('lstm_head', new LSTM(C, h, { numLayers: cfg.encoder_num_layers, bidirectional: true, dropout: cfg.encoder_dropout }));
      this.mlp_head = this.module('mlp_head', new Sequential([2 * h, 2 * h, C], 'relu'));
    } else {
      this.mlp_head = this.module('mlp_head', new Sequential([C, h, h, C], 'relu'));
    }
  }
  forward(): Tensor<'f32'> {
    const e = this.embedding.weight;
    if (!this.lstm_head) return this.mlp_head.forward(e);
    const [P, C] = e.shape as [number, number];
    const seq = this.lstm_head.forward(F.reshape(e, [1, P, C])); // [1, P, 2h]
    return F.reshape(this.mlp_head.forward(seq), [P, C]) as Tensor<'f32'>;
  }
}

export class PTuningModel extends PromptLearningModel {
  constructor(base: PretrainedModel, config: Record<string, unknown>, adapterName = 'default') {
    const cfg = normalizePTuningConfig(config, base);
    // inference_mode, as in PEFT: no MLP/LSTM head, the [P, C] table itself is the prompt (a loaded folder's saved output)
    const encoder = cfg.inference_mode ? new SavedPromptEncoder(randn([cfg.num_virtual_tokens, cfg.token_dim], { seed: nextSeed() })) : new PTuningEncoder(cfg);
    super(base, adapterName, cfg as PTuningConfig & Record<string, unknown>, 'embeds', encoder);
  }

  /**
   * Loads a PEFT P_TUNING folder: the saved encoder output is used directly (PEFT's inference
   * mode; the encoder itself is not in the file).
   * The folder is read through fs/promises.
   * @example const pt = await PTuningModel.fromPretrained(base, 'out/adapter');
   */
  static async fromPretrained(base: PretrainedModel, dir: string, adapterName = 'default'): Promise<PTuningModel> {
    return PTuningModel.fromAdapterFolder(base, await readAdapterFolder(dir), dir, adapterName);
  }

  /**
   * {@link PTuningModel.fromPretrained} with blocking reads.
   * @example const pt = PTuningModel.fromPretrainedSync(base, 'out/adapter');
   */
  static fromPretrainedSync(base: PretrainedModel, dir: string, adapterName = 'default'): PTuningModel {
    return PTuningModel.fromAdapterFolder(base, readAdapterFolderSync(dir), dir, adapterName);
  }

  /** A PTuningModel over `base` holding a folder's adapter, as read from `dir`. */
  protected static fromAdapterFolder(base: PretrainedModel, folder: AdapterFolder, dir: string, adapterName: string): PTuningModel {
    const { config } = folder;
    if (config.peft_type !== 'P_TUNING') throw new TunekitError('ERR_FORMAT', `${dir} holds a ${String(config.peft_type)} adapter, not P_TUNING`);
    const m = new PTuningModel(base, { ...config, encoder_reparameterization_type: 'MLP' }, adapterName);
    m.applyAdapterFolder(folder, adapterName);
    m.adapterConfigs.set(adapterName, { ...m.adapterConfigs.get(adapterName), ...config, inference_mode: false });
    return m;
  }
}
