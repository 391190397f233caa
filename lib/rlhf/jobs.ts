/**
 * The `method: reward | dpo | ppo` jobs of `tunekit train` (runTraining in lib/train/run.ts
 * finds them in its job registry; importing this module registers them). Each prepares its data
 * (preference pairs, or prompts), loads the base for its task and wraps it with LoRA from the
 * config's peft block (or trains every weight with `peft: null`), and names its objective; the
 * run itself (settings, checkpoints, --resume, SIGINT, metrics, plots, results.json) is the
 * runner's, the same as for supervised methods. Outputs: adapter/ (PEFT), model/ (reward: the
 * merged reward model, ready for PPO's `rlhf.reward_model`; full fine-tuning: the model).
 *
 * @example
 * // reward.yaml: { model: builtin:tunekit-gpt2-small, method: reward, dataset: { path: prefs.jsonl } }
 * await runTraining(loadConfig('reward.yaml'));
 * // ppo.yaml: { method: ppo, rlhf: { reward_model: runs/reward }, dataset: { path: prompts.jsonl } }
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TunekitError } from '../errors.js';
import { loadPretrained, readConfig, savePretrained } from '../models/loader.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { architectureFor } from '../models/registry.js';
import type { PretrainedModel } from '../models/common.js';
import { resolveDevice, trainingPath } from '../tensor/device.js';
import { loadDataset } from '../data/dataset.js';
import { buildPreferenceExample } from '../data/examples.js';
import type { NormalizedRecord, PreferenceExample } from '../data/types.js';
import { peftMethodFor } from '../peft/base/registry.js';
import { PeftModel } from '../peft/base/peft_model.js';
import { LoraModel } from '../peft/lora/model.js';
import type { TrainConfig, RlhfConfig } from '../train/config.js';
import { registerRunJob, type RunJob, type RunJobContext, type RunJobData } from '../train/run_job.js';
import type { TrainableModel } from '../train/trainer.js';
import { RewardObjective, type PairFigures } from './reward.js';
import { DpoObjective } from './dpo.js';
import { PpoObjective, rewardModelScorer, type PpoEval } from './ppo.js';
import '../peft/index.js';

/** Whether a method is one of the RLHF ones these jobs run. */
export function isRlhfMethod(method: string): method is 'reward' | 'dpo' | 'ppo' {
  return method === 'reward' || method === 'dpo' || method === 'ppo';
}

function rlhfBlock(config: TrainConfig): RlhfConfig {
  if (!config.rlhf) throw new TunekitError('ERR_CONFIG', `method '${config.method}': expected an rlhf block (filled with defaults by loadConfig) but received none`);
  return config.rlhf;
}

function refuseNf4(config: TrainConfig): void {
  if (config.quantization === 'nf4') throw new TunekitError('ERR_CONFIG', `quantization nf4 is not supported for method '${config.method}' yet`);
}

/** LoRA from the config's peft block, or every weight trained when peft is null. */
function wrap(base: PretrainedModel, config: TrainConfig): TrainableModel {
  if (config.peft === null) {
    base.requiresGrad_(true);
    return base;
  }
  return peftMethodFor('lora').create(base, { ...(config.peft as Record<string, unknown>) }, 'default');
}

/** The token a prompt starts with: BOS, else EOS, else padding. */
function leadToken(t: Tokenizer): number {
  return t.bosTokenId ?? t.eosTokenId ?? padTokenOf(t);
}

function padTokenOf(t: Tokenizer): number {
  return t.padTokenId ?? t.eosTokenId ?? 0;
}

async function records(ctx: RunJobContext): Promise<{ train: NormalizedRecord[]; eval: NormalizedRecord[] }> {
  const d = ctx.config.dataset;
  const data = await loadDataset({
    path: d.path, format: d.format, recordFormat: d.record_format, textField: d.text_field, labelField: d.label_field,
    onError: d.on_error, invalidUtf8: d.invalid_utf8, eval: d.eval,
  });
  if (data.skipped) ctx.log(`skipped ${data.skipped} malformed row(s): ${data.skipReasons.slice(0, 3).join('; ')}`);
  for (const w of data.warnings) ctx.log(w);
  return data;
}

/** Preference pairs of both splits; a prompt gets a lead token when empty (its first answer token is predicted from it). */
async function preferenceData(ctx: RunJobContext): Promise<RunJobData<PreferenceExample>> {
  refuseNf4(ctx.config);
  const data = await records(ctx);
  const tok = await ctx.loadTokenizer();
  const lead = leadToken(tok);
  const maxLength = ctx.config.dataset.max_length;
  const pairs = (recs: NormalizedRecord[]) => recs.map((r, i) => {
    const ex = buildPreferenceExample(r, tok, { maxLength }, i);
    return ex.promptIds.length ? ex : { ...ex, promptIds: [lead] };
  });
  return { train: pairs(data.train), eval: pairs(data.eval), unit: 'preference pairs' };
}

async function writeAdapterOrModel(ctx: RunJobContext, model: TrainableModel): Promise<void> {
  const out = ctx.config.output_dir;
  if (model instanceof PeftModel) await model.saveAdapter(join(out, 'adapter'));
  else await savePretrained(model, join(out, 'model'));
}

export const rewardJob: RunJob<PreferenceExample, PairFigures> = {
  prepareData: preferenceData,
  async buildModel(ctx) {
    const { model: base } = await loadPretrained(ctx.modelDir, { task: 'seq_cls', numLabels: 1 });
    return { model: wrap(base, ctx.config), base };
  },
  async objective(ctx, model) {
    return new RewardObjective(model, { padTokenId: padTokenOf(await ctx.loadTokenizer()) });
  },
  async writeOutputs(ctx, model) {
    const out = ctx.config.output_dir;
    if (model instanceof PeftModel) await model.saveAdapter(join(out, 'adapter'));
    // the merged reward model, loadable by PPO's rlhf.reward_model and by transformers
    const merged = model instanceof LoraModel ? model.mergeAndUnload() : (model as PretrainedModel);
    await savePretrained(merged, join(out, 'model'));
  },
};

export const dpoJob: RunJob<PreferenceExample, PairFigures> = {
  prepareData: preferenceData,
  async buildModel(ctx) {
    const { model: base } = await loadPretrained(ctx.modelDir, { task: 'causal_lm' });
    return { model: wrap(base, ctx.config), base };
  },
  async objective(ctx, model, data) {
    const objective = new DpoObjective(model, { padTokenId: padTokenOf(await ctx.loadTokenizer()), beta: rlhfBlock(ctx.config).beta });
    // full fine-tuning: the reference is the base before training, computed once here, before
    // any checkpoint is restored (a resumed run computes the same numbers from the same base)
    if (!(model instanceof PeftModel)) {
      const bs = ctx.config.training.batch_size * 2;
      objective.precompute(data.train, bs);
      objective.precompute(data.eval, bs);
    }
    return objective;
  },
  writeOutputs: (ctx, model) => writeAdapterOrModel(ctx, model),
};

export const ppoJob: RunJob<number[], Promise<PpoEval>> = {
  async prepareData(ctx) {
    refuseNf4(ctx.config);
    const rl = rlhfBlock(ctx.config);
    if (ctx.config.training.batch_size < 2) throw new TunekitError('ERR_CONFIG', `training.batch_size: expected at least 2 prompts per PPO rollout (advantages are whitened over the batch) but received ${ctx.config.training.batch_size}`);
    const data = await records(ctx);
    const tok = await ctx.loadTokenizer();
    const lead = leadToken(tok);
    const maxPositions = await loadedMaxPositions(ctx);
    const room = Math.max(1, Math.min(ctx.config.dataset.max_length, maxPositions) - rl.max_new_tokens);
    // the prompt of any record format: the preference/completion prompt, or the start of the text
    const promptOf = (r: NormalizedRecord): number[] => {
      const text = r.kind === 'preference' || r.kind === 'prompt_completion' ? r.prompt : r.kind === 'text' || r.kind === 'labelled' ? r.text : '';
      const ids = tok.encode(text, { addSpecialTokens: false }).ids;
      return [lead, ...ids.slice(0, room - 1)];
    };
    return { train: data.train.map(promptOf), eval: data.eval.map(promptOf), unit: 'prompts' };
  },
  async buildModel(ctx) {
    const { model: base } = await loadPretrained(ctx.modelDir, { task: 'causal_lm' });
    return { model: wrap(base, ctx.config), base };
  },
  async objective(ctx, model) {
    const rl = rlhfBlock(ctx.config);
    const rmPath = rl.reward_model!;
    const rmDir = existsSync(join(rmPath, 'config.json')) ? rmPath : join(rmPath, 'model');
    if (!existsSync(join(rmDir, 'config.json'))) throw new TunekitError('ERR_NOT_FOUND', `rlhf.reward_model: no reward model in ${rmPath} (expected a Hugging Face folder, or a tunekit reward run with model/)`);
    const { model: rm } = await loadPretrained(rmDir, { task: 'seq_cls', numLabels: 1 });
    // the frozen models score on the run's device too (the Trainer moves only the policy and the
    // value head; runTraining resolved training.device already, so this cannot fail here)
    const device = resolveDevice(ctx.config.training.device, 'training.device', { path: trainingPath(ctx.config.task) }).device;
    rm.to(device);
    const ref = model instanceof PeftModel ? undefined : (await loadPretrained(ctx.modelDir)).model.to(device);
    const tok = await ctx.loadTokenizer();
    const pad = padTokenOf(tok);
    return new PpoObjective({
      policy: model, reward: rewardModelScorer(rm, pad), padTokenId: pad, eosTokenId: tok.eosTokenId ?? null,
      klCoef: rl.kl_coef, klTarget: rl.kl_target, klHorizon: rl.kl_horizon, gamma: rl.gamma, lam: rl.lam, cliprange: rl.cliprange,
      cliprangeValue: rl.cliprange_value, ppoEpochs: rl.ppo_epochs, maxNewTokens: rl.max_new_tokens, seed: ctx.config.training.seed,
      refModel: ref,
    });
  },
  writeOutputs: (ctx, model) => writeAdapterOrModel(ctx, model),
};

/** The base's positions, from its config.json (the weights are loaded later, by buildModel). */
async function loadedMaxPositions(ctx: RunJobContext): Promise<number> {
  const raw = await readConfig(ctx.modelDir);
  return architectureFor(raw.model_type).parseConfig(raw).maxPositions;
}

registerRunJob('reward', ['reward'], rewardJob);
registerRunJob('dpo', ['dpo'], dpoJob);
registerRunJob('ppo', ['ppo'], ppoJob);
