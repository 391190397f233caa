/**
 * generate() never changes the model's mode: overlapping generations on a train-mode model give
 * the greedy (eval-mode) ids transformers gives and leave every module in train mode, and a fit()
 * interleaved with a generate() keeps its dropout on every step (bit-identical losses). generate()
 * once switched the model to eval and restored the mode it saw at its start, so a second call
 * restored "eval" over a training model, and a fit beside it ran steps without dropout.
 */
import { describe, it, expect } from 'vitest';
import { loadPretrainedSync, generate, type PretrainedModel } from '../../lib/models/index.js';
import { Trainer, type TrainExample } from '../../lib/train/trainer.js';
import { dir, expectedOf } from './helpers.js';

const allTraining = (m: PretrainedModel) => m.namedModules().every(([, mod]) => mod.training);
const noneTraining = (m: PretrainedModel) => m.namedModules().every(([, mod]) => !mod.training);

describe('generate() leaves the model mode alone', () => {
  it('two overlapping generations on a train-mode model: greedy ids as in eval mode, model still in train mode', async () => {
    const g = expectedOf('gpt2_lm').generate!; // dropout 0.1 in this config: train mode would change the ids
    const { model } = loadPretrainedSync(dir('gpt2_lm'));
    model.train();
    // the short one finishes first, while the long one still runs
    const [short, long] = await Promise.all([
      generate(model, [g.prompts[1]!], { maxNewTokens: 3, eosTokenId: null }),
      generate(model, [g.prompts[0]!], { maxNewTokens: g.max_new_tokens, eosTokenId: null }),
    ]);
    expect(short.sequences[0]).toEqual(g.single[1]!.slice(0, 3));
    expect(long.sequences[0]).toEqual(g.single[0]);
    expect(allTraining(model)).toBe(true);
    // and an eval-mode model stays in eval mode
    model.eval();
    await Promise.all([generate(model, [g.prompts[0]!], { maxNewTokens: 2 }), generate(model, [g.prompts[1]!], { maxNewTokens: 5 })]);
    expect(noneTraining(model)).toBe(true);
    model.dispose();
  });

  it('a fit() interleaved with a generate() on the same model trains with dropout on every step', async () => {
    const data: TrainExample[] = Array.from({ length: 16 }, (_, i) => {
      const ids = Array.from({ length: 8 + (i % 3) }, (_, t) => ((i * 7 + t) % 90) + 1);
      return { inputIds: ids, labels: ids };
    });
    const run = async (withGenerate: boolean): Promise<number[]> => {
      const { model } = loadPretrainedSync(dir('gpt2_lm'));
      const losses: number[] = [];
      const trainer = new Trainer({
        model, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none',
        settings: { maxSteps: 10, batchSize: 4, lr: 1e-3, schedule: 'constant', logEvery: 1, seed: 3 },
        callbacks: { onStep: (i) => losses.push(i.loss) },
      });
      const fit = trainer.fit();
      // ends after a few of fit's steps: the old generate() then "restored" eval mode under the trainer
      if (withGenerate) await generate(model, [[11, 45, 3]], { maxNewTokens: 4, eosTokenId: null });
      await fit;
      model.dispose();
      return losses;
    };
    const alone = await run(false);
    const beside = await run(true);
    expect(beside).toHaveLength(10);
    expect(beside).toEqual(alone);
  });
});
