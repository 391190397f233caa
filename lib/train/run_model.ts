/**
 * A run's model as its config asks: the base wrapped for the method (full, head-only, a PEFT
 * method, QLoRA's NF4 base), and the same model rebuilt from a finished run folder for
 * `tunekit eval` (an NF4 base is quantized again exactly as in training, so eval reproduces the
 * run's own figures).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TunekitError } from '../errors.js';
import { loadPretrained, readConfig } from '../models/loader.js';
import { resolveModelPath } from '../models/builtin.js';
import { architectureFor } from '../models/registry.js';
import type { PretrainedModel } from '../models/common.js';
import { loadPeftFolder, peftMethodFor } from '../peft/base/registry.js';
import { parseQloraConfig, splitQloraConfig } from '../peft/qlora/config.js';
import type { PeftModel } from '../peft/base/peft_model.js';
import { LoraModel } from '../peft/lora/model.js';
import { PromptTuningModel } from '../peft/prompt_tuning/model.js';
import { quantizeModel } from '../quant/quantize.js';
import type { TrainConfig } from './config.js';
import '../peft/index.js';

const PROMPT_METHODS = new Set(['prompt_tuning', 'p_tuning', 'prefix_tuning']);

/**
 * Refuses a dataset.max_length the model cannot take, before any data is read: the message names
 * the field and the limit (it was `gatherRows: id 512 ... out of range` deep in the forward pass).
 * Prompt methods' virtual tokens take positions too.
 */
export async function checkSequenceLength(config: TrainConfig, modelDir: string): Promise<void> {
  const raw = await readConfig(modelDir);
  const mc = architectureFor(raw.model_type).parseConfig(raw);
  const virtual = PROMPT_METHODS.has(config.method) ? Number((config.peft as { num_virtual_tokens?: number } | null)?.num_virtual_tokens ?? 0) : 0;
  if (config.dataset.max_length + virtual > mc.maxSequenceLength) {
    const what = virtual ? `dataset.max_length ${config.dataset.max_length} + peft.num_virtual_tokens ${virtual}` : `dataset.max_length ${config.dataset.max_length}`;
    throw new TunekitError('ERR_CONFIG', `${what}: expected at most ${mc.maxSequenceLength} positions, the most this ${mc.modelType} model takes (${modelDir}/config.json); lower dataset.max_length to ${mc.maxSequenceLength - virtual}`);
  }
}

/** QLoRA's base as training made it: linear layers -> NF4 with the peft block's blocksize and double quantization. */
async function quantizeForConfig(base: PretrainedModel, config: TrainConfig): Promise<void> {
  const { quantization } = splitQloraConfig(parseQloraConfig(config.peft ?? {}));
  await quantizeModel(base, quantization);
}

/**
 * The model the method trains: a PEFT wrapper, or the base model itself for full fine-tuning.
 * QLoRA's base is quantized layer by layer with the event loop running between layers (a
 * promise), then LoRA is added as the qlora method's create() does.
 */
export async function wrapForMethod(base: PretrainedModel, config: TrainConfig): Promise<PretrainedModel | PeftModel> {
  if (config.method === 'full') {
    base.requiresGrad_(true);
    return base;
  }
  if (config.method === 'head_only') {
    // frozen base: only the task head (score / classifier / a tied LM head has none) trains
    base.requiresGrad_(false);
    const head = base.namedParameters().filter(([n]) => /^(score|classifier)\./.test(n));
    if (head.length === 0) throw new TunekitError('ERR_CONFIG', `method head_only needs a task head (task seq_cls or token_cls); task '${config.task}' has none`);
    for (const [, p] of head) p.requiresGrad = true;
    return base;
  }
  if (config.quantization === 'nf4') {
    // QLoRA: the qlora method quantizes the base (blocksize, double_quant from the block) and adds LoRA
    if (config.method !== 'qlora' && config.method !== 'lora') throw new TunekitError('ERR_CONFIG', `quantization nf4 works with methods qlora and lora, not '${config.method}'`);
    // the qlora method's create() in two halves: quantizing yields between layers, then LoRA on top
    const { quantization, lora } = splitQloraConfig(parseQloraConfig(config.peft ?? {}));
    await quantizeModel(base, quantization);
    return new LoraModel(base, lora, 'default');
  }
  const method = peftMethodFor(config.method);
  const peft = { ...(config.peft ?? {}) } as Record<string, unknown>;
  if (config.method === 'prompt_tuning') {
    // TEXT init tokenises its text with the base model's own tokenizer unless told otherwise, read
    // through fs/promises (create() would read it with blocking calls)
    if (peft.prompt_tuning_init === 'TEXT' && !peft.tokenizer_name_or_path) peft.tokenizer_name_or_path = resolveModelPath(config.model);
    return PromptTuningModel.create(base, peft, 'default');
  }
  return method.create(base, peft, 'default');
}

/**
 * The model of a finished run, for evaluation: `runDir/model` (full fine-tuning, head-only), or
 * the base with `runDir/adapter` applied (on the NF4 base for QLoRA runs); with `base: true` the
 * base alone (a zero-shot or frozen-base baseline).
 */
export async function loadRunModel(config: TrainConfig, opts: { runDir: string; base?: boolean; labels?: string[] }): Promise<PretrainedModel | PeftModel> {
  const fullModel = join(opts.runDir, 'model');
  const useFull = !opts.base && existsSync(fullModel);
  const { model: base } = await loadPretrained(useFull ? fullModel : resolveModelPath(config.model), { task: config.task, labels: opts.labels });
  const adapterDir = join(opts.runDir, 'adapter');
  if (opts.base || useFull || !existsSync(adapterDir)) return base;
  if (config.quantization === 'nf4') await quantizeForConfig(base, config);
  return loadPeftFolder(base, adapterDir);
}
