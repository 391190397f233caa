/**
 * A whole training job from a validated config: load the base model and tokenizer, prepare the
 * dataset for the task, wrap the model with the method, train, evaluate, and write the run
 * folder (adapter or model, metrics.jsonl, loss.svg, checkpoint/, results.json).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../native.js';
import { TunekitError } from '../errors.js';
import { loadPretrained } from '../models/loader.js';
import { resolveModelPath } from '../models/builtin.js';
import { savePretrained } from '../models/loader.js';
import type { PretrainedModel } from '../models/common.js';
import { Tokenizer } from '../tokenizer/index.js';
import { loadDataset } from '../data/dataset.js';
import { loadTaggedRecords, buildTagMap, buildTokenClassificationExamples, splitTagged } from '../data/token_cls.js';
import type { NormalizedRecord, TokenizerLike } from '../data/types.js';
import { buildLabelMap, labelMapToConfig, LABELS_FILE } from '../data/labels.js';
import { buildClassificationExamples, buildCausalLmSplit } from '../data/examples.js';
import type { ChoiceSet } from '../data/choices.js';
import { choiceSetFor } from './choice_eval.js';
import { peftMethodFor } from '../peft/base/registry.js';
import { quantizeModel } from '../quant/quantize.js';
import { PeftModel } from '../peft/base/peft_model.js';
import { writeJsonAtomicSync } from '../io/atomic.js';
import { prepareOutputDir } from '../io/output_dir.js';
import { manualSeed } from '../nn/random.js';
import { Trainer, type TrainExample, type TrainSettings } from './trainer.js';
import { warmupStepsFor, type TrainConfig } from './config.js';
import '../peft/index.js';
import { isRlhfMethod, runRlhf, toRunResult } from '../rlhf/run.js';

export type { RunResult } from './run_result.js';
import type { RunResult } from './run_result.js';

/**
 * Runs the job a config describes.
 * @example
 * const result = await runTraining(loadConfig('spam.yaml'));
 * console.log(result.eval?.accuracy);
 */
export async function runTraining(config: TrainConfig, opts: { resume?: boolean; log?: (s: string) => void } = {}): Promise<RunResult> {
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  // the output folder is checked (and made) before minutes of loading and training, not after
  prepareOutputDir(config.output_dir);
  // the seed decides initialisation (adapters, new heads, prompt encoders) as well as dropout and data order
  manualSeed(config.training.seed);
  // RLHF methods (reward, dpo, ppo) run their own loops: lib/rlhf/run.ts
  if (isRlhfMethod(config.method)) return toRunResult(await runRlhf(config, { log }));
  if (config.training.threads > 0) native.setNumThreads(config.training.threads);
  if (config.training.dtype !== 'f32') throw new TunekitError('ERR_CONFIG', `training.dtype '${config.training.dtype}' is not supported yet on this build; use f32`);
  const modelDir = resolveModelPath(config.model);
  const tokenizer = Tokenizer.fromFolder(modelDir);
  const tok: TokenizerLike = {
    encode: (text, o) => tokenizer.encode(text, o),
    eosTokenId: tokenizer.eosTokenId ?? undefined,
    bosTokenId: tokenizer.bosTokenId ?? undefined,
    padTokenId: tokenizer.padTokenId ?? undefined,
  };
  const data = config.task === 'token_cls' ? null : await loadDataset({
    path: config.dataset.path, format: config.dataset.format, recordFormat: config.dataset.record_format,
    textField: config.dataset.text_field, labelField: config.dataset.label_field, onError: config.dataset.on_error, invalidUtf8: config.dataset.invalid_utf8,
    eval: config.dataset.eval,
  });
  if (data?.skipped) log(`skipped ${data.skipped} malformed row(s): ${data.skipReasons.slice(0, 3).join('; ')}`);
  for (const w of data?.warnings ?? []) log(w);
  const task = config.task;
  const maxLength = config.dataset.max_length;
  let train: TrainExample[], evalEx: TrainExample[];
  let labels: string[] | undefined;
  let labelMap: ReturnType<typeof buildLabelMap> | undefined;
  let choices: ChoiceSet | undefined;
  if (task === 'seq_cls') {
    labelMap = buildLabelMap(data!.train as never);
    labels = labelMap.names;
    train = buildClassificationExamples(data!.train, tok, labelMap, { maxLength });
    evalEx = buildClassificationExamples(data!.eval, tok, labelMap, { maxLength });
  } else if (task === 'causal_lm') {
    train = causalLmExamplesFor(config, data!.train, data!.format, tokenizer, tok, modelDir);
    evalEx = causalLmExamplesFor(config, data!.eval, data!.format, tokenizer, tok, modelDir);
    choices = choiceSetFor(config, data!.train, data!.eval, tok, log);
  } else {
    // token classification: words + one tag per word (fields `tokens` / `tags` unless named)
    if (config.dataset.path.startsWith('builtin:')) throw new TunekitError('ERR_CONFIG', `task token_cls needs a file of {tokens, tags} records, not ${config.dataset.path}`);
    const fields = {
      wordsField: config.dataset.text_field === 'text' ? 'tokens' : config.dataset.text_field,
      tagsField: config.dataset.label_field === 'label' ? 'tags' : config.dataset.label_field,
      format: config.dataset.format, onError: config.dataset.on_error, invalidUtf8: config.dataset.invalid_utf8, warn: log,
    };
    const all = loadTaggedRecords(config.dataset.path, fields);
    const ev = config.dataset.eval;
    const split = ev.path ? { train: all, eval: loadTaggedRecords(ev.path, fields) } : splitTagged(all, ev);
    labels = buildTagMap(split.train);
    labelMap = { kind: 'string', names: labels, numLabels: labels.length };
    train = buildTokenClassificationExamples(split.train, tok, labels, { maxLength });
    evalEx = buildTokenClassificationExamples(split.eval, tok, labels, { maxLength });
  }
  if (train.length === 0) throw new TunekitError('ERR_VALUE', `the training split of ${config.dataset.path} produced no examples`);
  const padTokenId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;

  const { model: base, report } = loadPretrained(modelDir, { task, labels });
  if (report.initialised.length) log(`new head initialised: ${report.initialised.join(', ')}`);
  const model = wrapForMethod(base, config);
  const trainable = model.countParameters(true);
  const totalParams = base.countParameters();
  log(`model ${config.model}: ${(totalParams / 1e6).toFixed(2)}M parameters, method ${config.method}: ${trainable.toLocaleString('en-US')} trainable (${((100 * trainable) / totalParams).toFixed(3)}%)`);
  log(`data: ${train.length} train / ${evalEx.length} eval examples (max_length ${maxLength})`);

  const t = config.training;
  const stepsPerEpoch = Math.max(1, Math.floor(Math.ceil(train.length / t.batch_size) / t.grad_accum));
  const totalSteps = t.max_steps ?? Math.max(1, Math.floor(stepsPerEpoch * t.epochs));
  const settings: Partial<TrainSettings> = {
    epochs: t.epochs, maxSteps: totalSteps, batchSize: t.batch_size, gradAccum: t.grad_accum, lr: t.lr, weightDecay: t.weight_decay,
    warmupSteps: warmupStepsFor(t, totalSteps), schedule: t.schedule, maxGradNorm: t.max_grad_norm ?? 0,
    evalEvery: t.eval_every, saveEvery: t.save_every, earlyStoppingPatience: t.early_stopping?.patience ?? 0, seed: t.seed,
    logEvery: config.logging.every,
  };
  const outputDir = config.output_dir;
  mkdirSync(outputDir, { recursive: true });
  const runConfig = JSON.parse(JSON.stringify({ ...config, configPath: undefined })) as Record<string, unknown>;
  const trainer = new Trainer({ model, task, train, eval: evalEx, padTokenId, settings, outputDir, runConfig, progress: config.logging.progress, choices });
  // --resume: from the newest complete checkpoint of outputDir (an interrupted save is recovered);
  // none is ERR_NOT_FOUND, a finished run ERR_STATE with its outputs left as they are
  const fit = await trainer.fit({ resume: opts.resume === true, log });

  // final artefacts
  if (model instanceof PeftModel) {
    model.saveAdapter(join(outputDir, 'adapter'));
    // PEFT's folder has no place for label names; a side file keeps them for merge and eval
    if (labelMap) writeJsonAtomicSync(join(outputDir, 'adapter', LABELS_FILE), labelMapToConfig(labelMap), { indent: 2 });
    for (const line of model.writeRunReport(outputDir)) log(line);
  } else {
    savePretrained(model as PretrainedModel, join(outputDir, 'model'), { extraConfig: labelMap ? labelMapToConfig(labelMap) : {} });
  }
  const last = fit.evals.at(-1)?.result ?? null;
  const result: RunResult = { outputDir, fit, trainableParameters: trainable, totalParameters: totalParams, eval: last };
  writeJsonAtomicSync(join(outputDir, 'results.json'), {
    model: config.model, method: config.method, task, steps: fit.steps, status: fit.status, train_seconds: fit.trainSeconds,
    tokens_per_second: fit.tokensPerSecond, step_seconds: fit.trainSeconds / Math.max(1, fit.steps), peak_native_bytes: fit.peakBytes,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024, trainable_parameters: trainable, total_parameters: totalParams,
    eval: last, labels,
  }, { indent: 2 });
  return result;
}

/**
 * The causal-LM examples of one split as the config asks: chat records through the tokenizer's
 * chat template (tokenizer_config.json), packing, truncation, EOS.
 */
export function causalLmExamplesFor(config: TrainConfig, records: NormalizedRecord[], format: string, tokenizer: Tokenizer, tok: TokenizerLike, modelDir: string): TrainExample[] {
  const renderChat = tokenizer.chatTemplate
    ? (messages: { role: string; content: string }[], o?: { addGenerationPrompt?: boolean }) =>
        tokenizer.applyChatTemplate(messages, { addGenerationPrompt: o?.addGenerationPrompt ?? false }) as string
    : undefined;
  if (format === 'chat' && !renderChat) throw new TunekitError('ERR_CONFIG', `chat records need a chat_template in ${modelDir}/tokenizer_config.json`);
  const d = config.dataset;
  return buildCausalLmSplit(records, tok, { maxLength: d.max_length, renderChat, addEos: d.add_eos, packing: d.packing, truncation: d.truncation });
}

/** The model the method trains: a PEFT wrapper, or the base model itself for full fine-tuning. */
export function wrapForMethod(base: PretrainedModel, config: TrainConfig): PretrainedModel | PeftModel {
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
    // QLoRA: base linear layers -> NF4 (double-quantized, blocksize from the config; heads and
    // embeddings stay f32), then LoRA with the qlora recipe's defaults (config.ts QloraSchema)
    if (config.method !== 'qlora' && config.method !== 'lora') throw new TunekitError('ERR_CONFIG', `quantization nf4 works with methods qlora and lora, not '${config.method}'`);
    const peft = { ...(config.peft ?? {}) } as Record<string, unknown>;
    const blocksize = (peft.blocksize as number | undefined) ?? 64;
    const doubleQuant = (peft.double_quant as boolean | undefined) ?? true;
    delete peft.blocksize;
    delete peft.double_quant;
    quantizeModel(base, { blocksize, doubleQuant });
    return peftMethodFor('lora').create(base, peft, 'default');
  }
  const method = peftMethodFor(config.method);
  const peft = { ...(config.peft ?? {}) } as Record<string, unknown>;
  // prompt tuning's TEXT init tokenises its text with the base model's own tokenizer unless told otherwise
  if (config.method === 'prompt_tuning' && peft.prompt_tuning_init === 'TEXT' && !peft.tokenizer_name_or_path) peft.tokenizer_name_or_path = resolveModelPath(config.model);
  return method.create(base, peft, 'default');
}
