/**
 * The fields the prompt-learning methods share (peft 0.21's PromptLearningConfig), as a zod
 * shape each method's one schema extends, and PEFT's rules for filling them from the model
 * (_prepare_prompt_learning_config): token_dim = hidden size, num_layers, num_attention_heads;
 * for prefix tuning on grouped-query models token_dim = head_dim * num_key_value_heads and
 * num_attention_heads = num_key_value_heads.
 */
import { z } from 'zod';
import { TunekitError } from '../../errors.js';
import type { PretrainedModel } from '../../models/common.js';
import { peftConfigShape, oneOf, posInt, taskTypeFor } from '../base/config.js';

/**
 * The shared fields (the model-dependent ones null until `promptConfigFor` fills them).
 * @example z.strictObject({ ...promptLearningShape('PROMPT_TUNING'), prompt_tuning_init: ... })
 */
export function promptLearningShape<T extends 'PROMPT_TUNING' | 'P_TUNING' | 'PREFIX_TUNING'>(peftType: T) {
  return {
    ...peftConfigShape(peftType),
    /** virtual tokens P before the real ones; tunekit's default 20 (PEFT has none: it must be set there) */
    num_virtual_tokens: posInt.default(20),
    /** width of a virtual token; null: the model's (hidden size; prefix tuning: the key/value width) */
    token_dim: posInt.nullable().default(null),
    /** 1 for decoder-only and encoder-only models; null: 1 (encoder-decoder models, 2, are not supported) */
    num_transformer_submodules: oneOf([1] as const, 'encoder-decoder models (2) are not supported').nullable().default(null),
    /** the model's attention heads (prefix tuning: key/value heads); null: the model's */
    num_attention_heads: posInt.nullable().default(null),
    /** the model's layers; null: the model's */
    num_layers: posInt.nullable().default(null),
    /** modules trained and saved whole beside the prompt (the task head is added) */
    modules_to_save: z.array(z.string().min(1)).nullable().default(null),
  };
}

type ModelFilled = 'token_dim' | 'num_transformer_submodules' | 'num_attention_heads' | 'num_layers' | 'task_type';
/** A parsed prompt-learning config after the model step: the model-dependent fields are numbers. */
export type WithModelFields<C> = Omit<C, ModelFilled> & { token_dim: number; num_transformer_submodules: number; num_attention_heads: number; num_layers: number; task_type: string };

/** The shared fields of a prompt-learning config after the model step (what the prompt models read). */
export type PromptLearningConfig = WithModelFields<z.output<z.ZodObject<ReturnType<typeof promptLearningShape>>>>;

type Parsed = { peft_type: 'PROMPT_TUNING' | 'P_TUNING' | 'PREFIX_TUNING'; task_type: string | null; token_dim: number | null; num_transformer_submodules: number | null; num_attention_heads: number | null; num_layers: number | null };

/**
 * The model step: fills token_dim, num_layers, num_attention_heads, num_transformer_submodules
 * and task_type from the model, and refuses values that contradict it.
 * @example promptConfigFor(parsePromptTuningConfig({ num_virtual_tokens: 8 }), model).token_dim // hidden size
 */
export function promptConfigFor<C extends Parsed>(cfg: C, model: PretrainedModel): WithModelFields<C> {
  const mc = model.config;
  const peftType = cfg.peft_type;
  const name = peftType.toLowerCase();
  let tokenDim = cfg.token_dim ?? mc.hiddenSize;
  let heads = cfg.num_attention_heads ?? mc.numHeads;
  // grouped-query attention: prefixes are keys/values, so they have the KV heads' width (PEFT #1901)
  if (peftType === 'PREFIX_TUNING' && mc.raw.num_key_value_heads !== undefined && cfg.num_attention_heads === null) {
    tokenDim = mc.headDim * mc.numKvHeads;
    heads = mc.numKvHeads;
  }
  if (model.task === 'image_cls') throw new TunekitError('ERR_CONFIG', `${name}: prompt methods prepend virtual tokens to a text model's embeddings; an image model has none (use lora, qlora, full or head_only)`);
  const c = {
    ...cfg,
    task_type: taskTypeFor(cfg.task_type, model.task, name) as string,
    token_dim: tokenDim,
    num_transformer_submodules: cfg.num_transformer_submodules ?? 1,
    num_attention_heads: heads,
    num_layers: cfg.num_layers ?? mc.numLayers,
  };
  if (peftType === 'PREFIX_TUNING') {
    if (c.num_layers !== mc.numLayers) throw new TunekitError('ERR_CONFIG', `prefix_tuning num_layers: the model has ${mc.numLayers} layers but the config says ${c.num_layers}`);
    if (c.token_dim !== mc.headDim * mc.numKvHeads || c.num_attention_heads !== mc.numKvHeads) {
      throw new TunekitError('ERR_CONFIG', `prefix_tuning: token_dim ${c.token_dim} / num_attention_heads ${c.num_attention_heads} do not match the model's key/value width ${mc.headDim * mc.numKvHeads} (${mc.numKvHeads} heads of ${mc.headDim})`);
    }
  } else if (c.token_dim !== mc.hiddenSize) {
    throw new TunekitError('ERR_CONFIG', `${name} token_dim: the model's embeddings are ${mc.hiddenSize} wide but the config says ${c.token_dim}`);
  }
  return c;
}

/** The classification head a prompt method trains alongside the prompt (PEFT's modules_to_save). */
export function promptHeadModules(task: string, modelType: string): string[] {
  if (task === 'seq_cls') return modelType === 'bert' ? ['classifier'] : ['score'];
  if (task === 'token_cls') return ['classifier'];
  return [];
}
