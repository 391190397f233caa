/**
 * The shared base of the prompt-learning methods (prompt tuning, P-tuning, prefix tuning): a
 * PeftModel holding a prompt encoder whose output is either
 *  - `embeds`: [P, C] virtual token embeddings put before the real tokens' embeddings (the
 *    attention mask gets P leading ones, BERT's token types P leading zeros), or
 *  - `prefix`: [P, L*2*C'] key/value prefixes, reshaped as PEFT does
 *    ([P, L*2, H, D] -> [L*2, H, P, D]; rows 2l and 2l+1 are layer l's keys and values).
 * The forward returns outputs for the real tokens only (the P virtual positions are sliced off;
 * sequence-classification logits are per sequence already), so the Trainer's losses, the
 * metrics and `generate` work unchanged. Generation: the virtual tokens enter the KV cache on the
 * first call; later calls only extend the mask.
 *
 * Files are PEFT's: one tensor `prompt_embeddings` (no key prefix) = the encoder's output, and
 * an adapter_config.json with the prompt-learning fields. A loaded folder serves its saved
 * embeddings directly (PEFT's inference mode); they can still be trained further as a table.
 * @example
 * const pt = peftMethodFor('prompt_tuning').create(base, { num_virtual_tokens: 8 }, 'default');
 * const { logits } = pt.forward({ inputIds }); // [B, T, V]: the real tokens only
 */
import { PeftModel } from '../base/peft_model.js';
import { PROMPT_KEY_PREFIX } from '../base/adapter_io.js';
import { Module } from '../../nn/module.js';
import { Tensor } from '../../tensor/tensor.js';
import { tensor } from '../../tensor/creation.js';
import * as F from '../../autograd/ops.js';
import { noGrad } from '../../autograd/tape.js';
import { rawFromTensor, f32FromRaw } from '../../models/weights.js';
import { cachedLength, withLazyHidden, type ModelInputs, type ModelOutput, type PretrainedModel, type PrefixKV } from '../../models/common.js';
import type { RawTensor } from '../../io/safetensors.js';
import { TunekitError } from '../../errors.js';
import type { PromptLearningConfig } from './config.js';

/** A prompt encoder: a module whose output (no input) is the [P, width] prompt. */
export abstract class PromptEncoder extends Module {
  /** the encoder's output: [P, C] (virtual embeddings) or [P, L*2*C'] (prefix tuning) */
  abstract forward(): Tensor<'f32'>;
  /** the trainable tensors */
  trainable(): Tensor[] {
    return this.parameters();
  }
}

/** PEFT's inference mode: the saved output itself, served as a table (and trainable as one). */
export class SavedPromptEncoder extends PromptEncoder {
  weight: Tensor;
  constructor(weight: Tensor) {
    super();
    this.weight = this.param('weight', weight);
  }
  forward(): Tensor<'f32'> {
    return this.weight as Tensor<'f32'>;
  }
}

export abstract class PromptLearningModel extends PeftModel {
  readonly kind: 'embeds' | 'prefix';
  readonly numVirtualTokens: number;
  encoder: PromptEncoder;

  constructor(base: PretrainedModel, adapterName: string, cfg: PromptLearningConfig & Record<string, unknown>, kind: 'embeds' | 'prefix', encoder: PromptEncoder) {
    super(base, adapterName, cfg.modules_to_save ?? []);
    this.kind = kind;
    this.numVirtualTokens = cfg.num_virtual_tokens;
    this.encoder = this.module('prompt_encoder', encoder);
    this.adapterConfigs.set(adapterName, { ...cfg });
    this.markTrainable(encoder.trainable());
  }

  /** Width of one virtual token's output row: C, or L*2*C' for prefix tuning. */
  get promptWidth(): number {
    const cfg = this.adapterConfigs.get(this.activeAdapter)!;
    return this.kind === 'prefix' ? (cfg.num_layers as number) * 2 * (cfg.token_dim as number) : (cfg.token_dim as number);
  }

  /** The encoder output [P, width] (differentiable). */
  prompt(): Tensor<'f32'> {
    return this.encoder.forward();
  }

  /** Replaces the encoder by its saved output (PEFT's inference mode); the old one is disposed. */
  useSavedPrompt(weight: Tensor): void {
    const P = this.numVirtualTokens, W = this.promptWidth;
    if (weight.shape.length !== 2 || weight.shape[0] !== P || weight.shape[1] !== W) {
      throw new TunekitError('ERR_SHAPE', `prompt_embeddings is [${weight.shape}] but this ${this.adapterConfigs.get(this.activeAdapter)!.peft_type} adapter expects [${P}, ${W}]`);
    }
    const old = this.encoder;
    this.encoder = new SavedPromptEncoder(weight);
    this.replaceChild('prompt_encoder', this.encoder);
    old.dispose();
    this.markTrainable(this.encoder.trainable());
  }

  /** [P, W] -> [B, P, W]: the same rows for every sequence (gradients summed over the batch). */
  private static repeatBatch(x: Tensor, B: number): Tensor {
    const one = F.reshape(x, [1, ...x.shape]);
    return B === 1 ? one : F.concat(new Array<Tensor>(B).fill(one), 0);
  }

  /** The per-layer key/value prefixes [B, Hkv, P, D] from the encoder output. */
  prefixKV(B: number): PrefixKV {
    const cfg = this.adapterConfigs.get(this.activeAdapter)!;
    const P = this.numVirtualTokens, L = cfg.num_layers as number, H = cfg.num_attention_heads as number;
    const D = (cfg.token_dim as number) / H;
    // [P, L*2*H*D] -> [P, L*2, H, D] -> [L*2, H, P, D]
    const kv = F.contiguous(F.permute(F.reshape(this.prompt(), [P, L * 2, H, D]), [1, 2, 0, 3]));
    const out: PrefixKV = [];
    for (let l = 0; l < L; l++) {
      const k = F.reshape(F.slice(kv, 0, 2 * l, 2 * l + 1), [H, P, D]);
      const v = F.reshape(F.slice(kv, 0, 2 * l + 1, 2 * l + 2), [H, P, D]);
      out.push({ k: PromptLearningModel.repeatBatch(k, B) as Tensor<'f32'>, v: PromptLearningModel.repeatBatch(v, B) as Tensor<'f32'> });
    }
    return out;
  }

  forward(inputs: ModelInputs): ModelOutput {
    if (this.adaptersDisabled) return this.base.forward(inputs);
    const P = this.numVirtualTokens;
    const lead = inputs.inputsEmbeds ?? inputs.inputIds;
    if (!lead) throw new TunekitError('ERR_VALUE', 'forward: expected inputIds or inputsEmbeds');
    const B = lead.shape[0]!;
    if (this.kind === 'prefix') return this.base.forward({ ...inputs, prefix: this.prefixKV(B) });

    const mask = inputs.attentionMask ? prependConstant(inputs.attentionMask, P, 1) : null;
    if (cachedLength(inputs) > 0) {
      // generation after the first call: the virtual tokens are in the cache already
      return this.base.forward({ ...inputs, attentionMask: mask });
    }
    const emb = inputs.inputsEmbeds ?? this.base.embedTokens(inputs.inputIds!);
    const T = emb.shape[1]!;
    const virt = PromptLearningModel.repeatBatch(this.prompt(), B);
    const x = F.concat([virt, emb], 1) as Tensor<'f32'>;
    const tokenTypeIds = inputs.tokenTypeIds ? prependConstant(inputs.tokenTypeIds, P, 0) : undefined;
    const out = this.base.forward({ ...inputs, inputIds: undefined, inputsEmbeds: x, attentionMask: mask, tokenTypeIds });
    // the real tokens' hidden states, read only when asked for (a classifier's base computes them on demand)
    const hidden = () => F.slice(out.hidden, 1, P, P + T) as Tensor<'f32'>;
    if (this.base.task === 'seq_cls') return withLazyHidden(out.logits, hidden);
    return { logits: F.slice(out.logits, 1, P, P + T) as Tensor<'f32'>, hidden: hidden() };
  }

  protected adapterStateDict(): Map<string, Tensor> {
    return new Map([['prompt_embeddings', noGrad(() => this.prompt())]]);
  }

  protected loadAdapterState(_adapter: string, tensors: Map<string, RawTensor>): void {
    const raw = tensors.get('prompt_embeddings');
    if (!raw) throw new TunekitError('ERR_FORMAT', `adapter file lacks 'prompt_embeddings' (has ${[...tensors.keys()].slice(0, 5).join(', ') || 'nothing'})`);
    tensors.delete('prompt_embeddings');
    if (tensors.size) throw new TunekitError('ERR_FORMAT', `adapter file has tensors a prompt-learning adapter does not use: ${[...tensors.keys()].slice(0, 5).join(', ')}`);
    this.useSavedPrompt(f32FromRaw(raw));
  }

  /**
   * PEFT keeps the model of a prompt-learning method as PeftModel.base_model itself (no
   * BaseTuner in between), so its modules_to_save are saved and read as `base_model.<path>`
   * (`base_model.classifier.weight`, `base_model.score.weight`).
   */
  protected override get fileKeyPrefix(): string {
    return PROMPT_KEY_PREFIX;
  }

  /**
   * A PEFT prompt-learning folder: `prompt_embeddings` (the encoder's output, no key prefix) plus
   * the modules_to_save (`base_model.<path>`) and adapter_config.json.
   */
  protected override adapterFolderContent(adapter: string): { config: Record<string, unknown>; tensors: RawTensor[] } {
    const cfg = this.adapterConfigs.get(adapter);
    if (!cfg) throw new TunekitError('ERR_VALUE', `no adapter named '${adapter}'`);
    const emb = noGrad(() => this.prompt());
    const tensors: RawTensor[] = [rawFromTensor('prompt_embeddings', emb, 'f32')];
    for (const [name, p] of this.savedModuleParams()) tensors.push(rawFromTensor(this.fileKeyPrefix + name, p, 'f32'));
    if (!this.encoder.parameters().includes(emb)) emb.dispose(); // a computed output, not the table itself
    return { config: this.adapterFileConfig(cfg), tensors };
  }
}

/** [B, T] i32 -> [B, n + T] with n leading `value`s, on m's device. */
function prependConstant(m: Tensor<'i32'>, n: number, value: number): Tensor<'i32'> {
  const [B, T] = m.shape as [number, number];
  const src = m.toTypedArray() as Int32Array;
  const out = new Int32Array(B * (n + T));
  for (let b = 0; b < B; b++) {
    out.fill(value, b * (n + T), b * (n + T) + n);
    out.set(src.subarray(b * T, (b + 1) * T), b * (n + T) + n);
  }
  return tensor(out, [B, n + T], 'i32', m.device);
}
