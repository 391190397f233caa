/**
 * The CLI's `method: reward | dpo | ppo` jobs (called from lib/train/run.ts): load the base model
 * and tokenizer, build the examples, wrap with LoRA (or train fully with `peft: null`), train,
 * and write the run folder: adapter/ (PEFT), model/ (reward: the merged reward model, ready for
 * PPO's `rlhf.reward_model`), metrics.jsonl, loss.svg or ppo.svg, results.json.
 *
 * @example
 * // reward.yaml: { model: builtin:tunekit-gpt2-small, method: reward, dataset: { path: prefs.jsonl } }
 * await runTraining(loadConfig('reward.yaml'));
 * // ppo.yaml: { method: ppo, rlhf: { reward_model: runs/reward }, dataset: { path: prompts.jsonl } }
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TunekitError } from '../errors.js';
import { native } from '../native.js';
import { loadPretrained, savePretrained } from '../models/loader.js';
import { resolveModelPath } from '../models/builtin.js';
import type { PretrainedModel, Task } from '../models/common.js';
import { Tokenizer } from '../tokenizer/index.js';
import { loadDataset } from '../data/dataset.js';
import { buildPreferenceExample } from '../data/examples.js';
import type { NormalizedRecord, PreferenceExample, TokenizerLike } from '../data/types.js';
import { peftMethodFor } from '../peft/base/registry.js';
import { PeftModel } from '../peft/base/peft_model.js';
import { LoraModel } from '../peft/lora/model.js';
import { writeJsonAtomicSync } from '../io/atomic.js';
import type { TrainConfig } from '../train/config.js';
import type { RunResult } from '../train/run_result.js';
import { warmupStepsFor } from '../train/config.js';
import type { PairTrainSettings } from './pair_loop.js';
import { RewardTrainer } from './reward.js';
import { DpoTrainer } from './dpo.js';
import { PpoTrainer, rewardModelScorer, type PpoStats } from './ppo.js';
import { writePpoPlot } from './plot.js';
import '../peft/index.js';

export interface RlhfRunResult {
  outputDir: string;
  method: 'reward' | 'dpo' | 'ppo';
  steps: number;
  trainSeconds: number;
  trainableParameters: number;
  totalParameters: number;
  /** reward / DPO: the final held-out metrics; PPO: the last step's stats */
  metrics: Record<string, number>;
  /** reward / DPO: held-out metrics before training */
  before?: Record<string, number>;
  ppo?: PpoStats[];
}

/** Whether a method is one of the RLHF ones this module runs. */
export function isRlhfMethod(method: string): method is 'reward' | 'dpo' | 'ppo' {
  return method === 'reward' || method === 'dpo' || method === 'ppo';
}

function tokenizerLike(t: Tokenizer): TokenizerLike {
  return { encode: (s, o) => t.encode(s, o), eosTokenId: t.eosTokenId ?? undefined, bosTokenId: t.bosTokenId ?? undefined, padTokenId: t.padTokenId ?? undefined };
}

/** Wraps with LoRA from the config's peft block, or trains every weight when peft is null. */
function wrap(base: PretrainedModel, config: TrainConfig): PretrainedModel | PeftModel {
  if (config.peft === null) {
    base.requiresGrad_(true);
    return base;
  }
  return peftMethodFor('lora').create(base, { ...(config.peft as Record<string, unknown>) }, 'default');
}

function pairSettings(config: TrainConfig, n: number): Partial<PairTrainSettings> {
  const t = config.training;
  const total = t.max_steps ?? Math.max(1, Math.floor(Math.ceil(n / t.batch_size) * t.epochs));
  return {
    epochs: t.epochs, maxSteps: total, batchSize: t.batch_size, lr: t.lr, weightDecay: t.weight_decay, warmupSteps: warmupStepsFor(t, total),
    schedule: t.schedule, maxGradNorm: t.max_grad_norm ?? 0, evalEvery: t.eval_every, seed: t.seed, logEvery: config.logging.every,
  };
}

/** A prompt needs at least one token before the answer (its first token is predicted from it). */
function withLeadToken(ex: PreferenceExample, lead: number): PreferenceExample {
  return ex.promptIds.length ? ex : { ...ex, promptIds: [lead] };
}

/**
 * Runs a reward, DPO or PPO job from a validated config.
 * @example const r = await runRlhf(loadConfig({ model: 'builtin:tunekit-gpt2-small', method: 'dpo', dataset: { path: 'prefs.jsonl' } }));
 */
export async function runRlhf(config: TrainConfig, opts: { log?: (s: string) => void } = {}): Promise<RlhfRunResult> {
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const method = config.method;
  if (!isRlhfMethod(method)) throw new TunekitError('ERR_CONFIG', `runRlhf: expected method reward, dpo or ppo but received '${method}'`);
  if (config.quantization === 'nf4') throw new TunekitError('ERR_CONFIG', `quantization nf4 is not supported for method '${method}' yet`);
  if (config.training.threads > 0) native.setNumThreads(config.training.threads);
  const rl = config.rlhf!;
  const modelDir = resolveModelPath(config.model);
  const tokenizer = Tokenizer.fromFolder(modelDir);
  const tok = tokenizerLike(tokenizer);
  const pad = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
  const lead = tokenizer.bosTokenId ?? tokenizer.eosTokenId ?? pad;
  const data = await loadDataset({
    path: config.dataset.path, format: config.dataset.format, recordFormat: config.dataset.record_format,
    textField: config.dataset.text_field, labelField: config.dataset.label_field, onError: config.dataset.on_error, invalidUtf8: config.dataset.invalid_utf8, eval: config.dataset.eval,
  });
  for (const w of data.warnings) log(w);
  const outputDir = config.output_dir;
  mkdirSync(outputDir, { recursive: true });
  const maxLength = config.dataset.max_length;
  const task: Task = method === 'reward' ? 'seq_cls' : 'causal_lm';
  const { model: base } = loadPretrained(modelDir, { task, ...(method === 'reward' ? { numLabels: 1 } : {}) });
  const model = wrap(base, config);
  const trainable = model.countParameters(true), total = base.countParameters();
  log(`model ${config.model}: ${(total / 1e6).toFixed(2)}M parameters, method ${method}${config.peft ? ' + LoRA' : ' (full)'}: ${trainable.toLocaleString('en-US')} trainable`);

  let result: RlhfRunResult;
  if (method === 'reward' || method === 'dpo') {
    const prefs = (recs: NormalizedRecord[]) => recs.map((r, i) => withLeadToken(buildPreferenceExample(r, tok, { maxLength }, i), lead));
    const train = prefs(data.train), evalEx = prefs(data.eval);
    log(`data: ${train.length} train / ${evalEx.length} eval preference pairs`);
    const common = { train, eval: evalEx, padTokenId: pad, settings: pairSettings(config, train.length), outputDir, log };
    const trainer = method === 'reward'
      ? new RewardTrainer({ ...common, model })
      : new DpoTrainer({ ...common, model, beta: rl.beta, precomputeReference: !(model instanceof PeftModel) });
    const before = evalEx.length ? trainer.evaluate(evalEx) : undefined;
    const fit = await trainer.fit();
    const metrics = fit.evals.at(-1)?.metrics ?? fit.lastTrain;
    result = { outputDir, method, steps: fit.steps, trainSeconds: fit.trainSeconds, trainableParameters: trainable, totalParameters: total, metrics, before };
  } else {
    const rmPath = rl.reward_model!;
    const rmDir = existsSync(join(rmPath, 'config.json')) ? rmPath : join(rmPath, 'model');
    if (!existsSync(join(rmDir, 'config.json'))) throw new TunekitError('ERR_NOT_FOUND', `rlhf.reward_model: no reward model in ${rmPath} (expected a Hugging Face folder, or a tunekit reward run with model/)`);
    const { model: rm } = loadPretrained(rmDir, { task: 'seq_cls', numLabels: 1 });
    const promptOf = (r: NormalizedRecord): number[] => {
      const text = r.kind === 'preference' || r.kind === 'prompt_completion' ? r.prompt : r.kind === 'text' ? r.text : r.kind === 'labelled' ? r.text : '';
      const ids = tokenizer.encode(text, { addSpecialTokens: false }).ids;
      const room = Math.max(1, Math.min(maxLength, base.config.maxPositions) - rl.max_new_tokens);
      return [lead, ...ids.slice(0, room - 1)];
    };
    const prompts = data.train.map(promptOf);
    const B = config.training.batch_size;
    const steps = config.training.max_steps ?? Math.max(1, Math.floor((prompts.length / B) * config.training.epochs));
    log(`data: ${prompts.length} prompts, ${steps} PPO steps of ${B} rollouts`);
    const ppo = new PpoTrainer({
      policy: model, reward: rewardModelScorer(rm, pad), padTokenId: pad, eosTokenId: tokenizer.eosTokenId ?? null, klCoef: rl.kl_coef, klTarget: rl.kl_target, klHorizon: rl.kl_horizon, gamma: rl.gamma,
      lam: rl.lam, cliprange: rl.cliprange, cliprangeValue: rl.cliprange_value, ppoEpochs: rl.ppo_epochs, maxNewTokens: rl.max_new_tokens,
      lr: config.training.lr, weightDecay: config.training.weight_decay, maxGradNorm: config.training.max_grad_norm ?? 0, seed: config.training.seed,
      outputDir, log,
      refModel: model instanceof PeftModel ? undefined : loadPretrained(modelDir).model,
    });
    const t0 = performance.now();
    const all: PpoStats[] = [];
    try {
      for (let s = 0; s < steps; s++) {
        const batch = Array.from({ length: B }, (_, j) => prompts[(s * B + j) % prompts.length]!);
        all.push(await ppo.step(batch));
      }
    } finally {
      ppo.close();
    }
    writePpoPlot(all, join(outputDir, 'ppo.svg'), 'tunekit PPO', { klTarget: rl.kl_target });
    const last = all.at(-1)!;
    result = {
      outputDir, method, steps, trainSeconds: (performance.now() - t0) / 1000, trainableParameters: trainable, totalParameters: total,
      metrics: { ...last } as unknown as Record<string, number>, ppo: all,
    };
  }

  if (model instanceof PeftModel) model.saveAdapter(join(outputDir, 'adapter'));
  if (method === 'reward') {
    // the merged reward model, loadable by PPO's rlhf.reward_model and by transformers
    const merged = model instanceof LoraModel ? model.mergeAndUnload() : (model as PretrainedModel);
    savePretrained(merged, join(outputDir, 'model'));
  } else if (!(model instanceof PeftModel)) {
    savePretrained(model as PretrainedModel, join(outputDir, 'model'));
  }
  writeJsonAtomicSync(join(outputDir, 'results.json'), {
    model: config.model, method, steps: result.steps, train_seconds: result.trainSeconds, trainable_parameters: trainable, total_parameters: total,
    before: result.before ?? null, metrics: result.metrics,
  }, { indent: 2 });
  return result;
}

/**
 * The RLHF result in the shape runTraining returns (the CLI prints it): eval.loss is the held-out
 * reward/DPO loss (PPO: minus the last mean score); the RLHF metrics themselves are in
 * results.json and metrics.jsonl.
 */
export function toRunResult(r: RlhfRunResult): RunResult {
  const loss = r.method === 'ppo' ? -(r.metrics.score ?? NaN) : (r.metrics.loss ?? NaN);
  const count = r.metrics.count ?? 0;
  const evalRes = r.method === 'ppo' || count === 0 ? null : { loss, count };
  return {
    outputDir: r.outputDir, trainableParameters: r.trainableParameters, totalParameters: r.totalParameters, eval: evalRes,
    fit: {
      steps: r.steps, status: 'completed', lastTrainLoss: loss, evals: evalRes ? [{ step: r.steps, result: evalRes }] : [], trainSeconds: r.trainSeconds,
      tokensPerSecond: 0, peakBytes: native.memoryStats().peakBytes,
    },
  };
}
