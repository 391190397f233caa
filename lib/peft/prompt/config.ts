/**
 * Fields shared by the prompt-learning methods, with PEFT's names and its rules for filling them
 * from the model (peft 0.21 PromptLearningConfig and _prepare_prompt_learning_config): token_dim
 * = hidden size, num_layers, num_attention_heads; for prefix tuning on grouped-query models
 * token_dim = head_dim * num_key_value_heads and num_attention_heads = num_key_value_heads;
 * encoder_hidden_size defaults to token_dim.
 */
import { TunekitError, describe } from '../../errors.js';
import type { PretrainedModel } from '../../models/common.js';

export interface PromptLearningConfig {
  peft_type: 'PROMPT_TUNING' | 'P_TUNING' | 'PREFIX_TUNING';
  task_type: string | null;
  num_virtual_tokens: number;
  token_dim: number;
  /** 1 for decoder-only and encoder-only models (2 for encoder-decoder, not supported) */
  num_transformer_submodules: number;
  num_attention_heads: number;
  num_layers: number;
  modules_to_save: string[] | null;
  base_model_name_or_path: string | null;
  revision: string | null;
  inference_mode: boolean;
}

const TASK_TYPES: Record<string, string> = { causal_lm: 'CAUSAL_LM', seq_cls: 'SEQ_CLS', token_cls: 'TOKEN_CLS', base: 'FEATURE_EXTRACTION' };

function posInt(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new TunekitError('ERR_CONFIG', `${what}: expected a positive integer but received ${describe(v)}`);
  return v;
}

/** Fills the shared fields from the model where the config leaves them out. */
export function normalizePromptLearningConfig(
  partial: Record<string, unknown>,
  model: PretrainedModel,
  peftType: PromptLearningConfig['peft_type'],
): PromptLearningConfig {
  const mc = model.config;
  const name = peftType.toLowerCase();
  if (partial.num_virtual_tokens === undefined || partial.num_virtual_tokens === null) {
    throw new TunekitError('ERR_CONFIG', `${name} num_virtual_tokens: expected a positive integer but received nothing (PEFT has no default; 20 is common)`);
  }
  let tokenDim = partial.token_dim ?? mc.hiddenSize;
  let heads = partial.num_attention_heads ?? mc.numHeads;
  // grouped-query attention: prefixes are keys/values, so they have the KV heads' width (PEFT #1901)
  if (peftType === 'PREFIX_TUNING' && mc.raw.num_key_value_heads !== undefined && partial.num_attention_heads === undefined) {
    tokenDim = mc.headDim * mc.numKvHeads;
    heads = mc.numKvHeads;
  }
  const c: PromptLearningConfig = {
    peft_type: peftType,
    task_type: (partial.task_type as string) ?? TASK_TYPES[model.task] ?? null,
    num_virtual_tokens: posInt(partial.num_virtual_tokens, `${name} num_virtual_tokens`),
    token_dim: posInt(tokenDim, `${name} token_dim`),
    num_transformer_submodules: posInt(partial.num_transformer_submodules ?? 1, `${name} num_transformer_submodules`),
    num_attention_heads: posInt(heads, `${name} num_attention_heads`),
    num_layers: posInt(partial.num_layers ?? mc.numLayers, `${name} num_layers`),
    modules_to_save: (partial.modules_to_save as string[]) ?? null,
    base_model_name_or_path: (partial.base_model_name_or_path as string) ?? null,
    revision: (partial.revision as string) ?? null,
    inference_mode: (partial.inference_mode as boolean) ?? false,
  };
  if (c.num_transformer_submodules !== 1) {
    throw new TunekitError('ERR_CONFIG', `${name} num_transformer_submodules: expected 1 (decoder-only or encoder-only models) but received ${c.num_transformer_submodules}; encoder-decoder models are not supported`);
  }
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
