/**
 * RLHF demonstration on the built-in base (models/tunekit-gpt2-small): steering generations
 * with a reward learnt from real labelled text.
 *
 * The real labelled signal is SpamAssassin's ham/spam labels (the corpus installed with tunekit;
 * no sentiment lexicon ships with it, see docs/rlhf.md). Three stages, a few minutes on 2 cores:
 *  1. reward model: GPT-2 + LoRA with a scalar head, trained on pairs (ham snippet preferred to
 *     spam snippet) from the training split; accuracy on held-out pairs from the eval split;
 *  2. PPO: the LoRA policy writes 16-token continuations of real e-mail openings; the reward
 *     model scores them; mean score per step rises while the KL to the base model stays bounded
 *     (runs/rlhf-sentiment/ppo.svg);
 *  3. DPO: a fresh LoRA policy on the same kind of pairs; the held-out chosen-over-rejected
 *     margin (rewards/margins) before and after.
 *
 * Run (Node 20 has no TypeScript loader; compile the example against dist/):
 *   npm run build
 *   npx tsc examples/rlhf-sentiment.ts --outDir tmp --module nodenext --moduleResolution nodenext --target es2022 --types node --skipLibCheck
 *   node tmp/rlhf-sentiment.js [--model <folder>] [--out runs/rlhf-sentiment] [--ppo-steps 30] [--ppo-lr 5e-4]
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadPretrained, Tokenizer, LoraModel, generate, native, data, resolveModelPath } from '../dist/index.js';
import { RewardTrainer, DpoTrainer, PpoTrainer, rewardModelScorer, writePpoPlot, type PpoStats } from '../dist/rlhf/index.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'builtin:tunekit-gpt2-small' },
    out: { type: 'string', default: 'runs/rlhf-sentiment' },
    'ppo-steps': { type: 'string', default: '30' },
    'ppo-lr': { type: 'string', default: '5e-4' },
    threads: { type: 'string', default: '2' },
  },
});

let modelDir: string;
try {
  modelDir = resolveModelPath(args.model!);
} catch {
  console.log(`skipped: the built-in base ${args.model} is not there yet (made by scripts/pretrain-base.sh); pass --model <Hugging Face GPT-2 folder with tokenizer.json> to run on another base`);
  process.exit(0);
}
native.setNumThreads(Number(args.threads));
const out = args.out!;
mkdirSync(out, { recursive: true });
const t0 = performance.now();
const secs = () => ((performance.now() - t0) / 1000).toFixed(0);

const tokenizer = Tokenizer.fromFolder(modelDir);
const eos = tokenizer.eosTokenId ?? 0;
const pad = tokenizer.padTokenId ?? eos;
const enc = (s: string) => tokenizer.encode(s, { addSpecialTokens: false }).ids;

// ---- real labelled data: e-mail snippets (the first words of each body), ham and spam
const { train, eval: heldOut } = data.spamAssassin();
const snippet = (text: string, words: number) => text.replace(/\s+/g, ' ').trim().split(' ').slice(0, words).join(' ');
const usable = (r: { text: string }) => /[a-z]{3}/i.test(r.text) && r.text.split(/\s+/).length >= 12;
function pairsFrom(records: typeof train, n: number, seed: number) {
  const ham = records.filter((r) => r.label === 'ham' && usable(r));
  const spam = records.filter((r) => r.label === 'spam' && usable(r));
  const rng = new data.Rng(seed);
  rng.shuffle(ham);
  rng.shuffle(spam);
  return Array.from({ length: Math.min(n, ham.length, spam.length) }, (_, i) => ({
    promptIds: [eos],
    chosenIds: enc(' ' + snippet(ham[i]!.text, 16)).slice(0, 20),
    rejectedIds: enc(' ' + snippet(spam[i]!.text, 16)).slice(0, 20),
  }));
}
const rmTrain = pairsFrom(train, 480, 1), rmEval = pairsFrom(heldOut, 160, 2);
console.log(`[${secs()} s] data: ${rmTrain.length} train / ${rmEval.length} held-out (ham, spam) pairs from SpamAssassin`);

// ---- 1. reward model
const { model: rmBase } = loadPretrained(modelDir, { task: 'seq_cls', numLabels: 1 });
const rm = new LoraModel(rmBase, { r: 8, lora_alpha: 16, target_modules: ['c_attn', 'c_proj', 'c_fc'] });
const rmTrainer = new RewardTrainer({ model: rm, train: rmTrain, eval: rmEval, padTokenId: pad, settings: { batchSize: 8, lr: 1e-3, epochs: 1, logEvery: 20 }, outputDir: join(out, 'reward') });
const rmBefore = rmTrainer.evaluate();
await rmTrainer.fit();
const rmAfter = rmTrainer.evaluate();
console.log(`[${secs()} s] reward model held-out accuracy ${rmBefore.accuracy!.toFixed(3)} -> ${rmAfter.accuracy!.toFixed(3)}, margin ${rmBefore.margin!.toFixed(3)} -> ${rmAfter.margin!.toFixed(3)}`);

// ---- 2. PPO on openings of real e-mails (both classes), rewarded by the reward model
const openings = [...train.filter(usable)].map((r) => [eos, ...enc(' ' + snippet(r.text, 4)).slice(0, 6)]);
new data.Rng(3).shuffle(openings);
const { model: polBase } = loadPretrained(modelDir);
const policy = new LoraModel(polBase, { r: 8, lora_alpha: 16, target_modules: ['c_attn', 'c_proj', 'c_fc'] });
const sample = async (label: string) => {
  const g = await generate(policy, tokenizer, openings.slice(0, 3), { maxNewTokens: 16, temperature: 0.7, seed: 9 });
  console.log(`${label} samples:\n${g.texts!.map((t, i) => `  ${tokenizer.decode(openings[i]!.slice(1))} |${t.replace(/\n/g, ' ')}`).join('\n')}`);
};
await sample('before PPO');
const ppo = new PpoTrainer({
  policy, reward: rewardModelScorer(rm, pad), padTokenId: pad, eosTokenId: eos, maxNewTokens: 16, lr: Number(args['ppo-lr']), klCoef: 0.05, seed: 4, outputDir: join(out, 'ppo'),
  log: (l) => console.log(`[${secs()} s] ${l}`),
});
const stats: PpoStats[] = [];
const B = 16;
for (let s = 0; s < Number(args['ppo-steps']); s++) stats.push(await ppo.step(openings.slice(s * B, s * B + B)));
ppo.close();
writePpoPlot(stats, join(out, 'ppo.svg'), 'PPO on tunekit-gpt2-small: reward model trained on SpamAssassin ham > spam');
await sample('after PPO');

// ---- 3. DPO on fresh (ham, spam) pairs from the same splits
const { model: dpoBase } = loadPretrained(modelDir);
const dpoPolicy = new LoraModel(dpoBase, { r: 8, lora_alpha: 16, target_modules: ['c_attn', 'c_proj', 'c_fc'] });
const dpoTrain = pairsFrom(train, 320, 5), dpoEval = pairsFrom(heldOut, 160, 6);
const dpo = new DpoTrainer({ model: dpoPolicy, train: dpoTrain, eval: dpoEval, padTokenId: pad, beta: 0.1, settings: { batchSize: 8, lr: 1e-3, epochs: 1, logEvery: 20 }, outputDir: join(out, 'dpo') });
const dpoBefore = dpo.evaluate();
await dpo.fit();
const dpoAfter = dpo.evaluate();
console.log(`[${secs()} s] DPO held-out rewards/margins ${dpoBefore['rewards/margins']!.toFixed(3)} -> ${dpoAfter['rewards/margins']!.toFixed(3)}, rewards/accuracies ${dpoBefore['rewards/accuracies']!.toFixed(3)} -> ${dpoAfter['rewards/accuracies']!.toFixed(3)}, loss ${dpoBefore.loss!.toFixed(4)} -> ${dpoAfter.loss!.toFixed(4)}`);

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const summary = {
  model: args.model, seconds: Number(secs()),
  reward_model: { train_pairs: rmTrain.length, eval_pairs: rmEval.length, before: rmBefore, after: rmAfter },
  ppo: {
    steps: stats.length, batch: B, score_first3: mean(stats.slice(0, 3).map((s) => s.score)), score_last3: mean(stats.slice(-3).map((s) => s.score)),
    kl_last3: mean(stats.slice(-3).map((s) => s.kl)), kl_max: Math.max(...stats.map((s) => s.kl)), per_step: stats,
  },
  dpo: { train_pairs: dpoTrain.length, eval_pairs: dpoEval.length, before: dpoBefore, after: dpoAfter },
};
writeFileSync(join(out, 'summary.json'), JSON.stringify(summary, null, 2));
console.log(`[${secs()} s] PPO mean score ${summary.ppo.score_first3.toFixed(3)} (first 3 steps) -> ${summary.ppo.score_last3.toFixed(3)} (last 3), KL ${summary.ppo.kl_last3.toFixed(3)} (last 3, max ${summary.ppo.kl_max.toFixed(3)}); wrote ${join(out, 'summary.json')}, ${join(out, 'ppo.svg')}`);
if (!existsSync(join(out, 'ppo.svg'))) process.exit(1);
