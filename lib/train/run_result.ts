/** What a training job returns (lib/train/run.ts), and how the CLI reports it. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FitResult } from './trainer.js';

/**
 * An evaluation's figures, whatever the objective: supervised (loss, accuracy, f1, perplexity),
 * reward (loss, accuracy, margin), DPO (loss, rewards/*), PPO (score, kl, response_length).
 */
export type RunEval = {
  /** examples (or target tokens, or prompts) evaluated */
  count?: number;
  loss?: number;
  accuracy?: number;
  f1?: number;
  perplexity?: number;
  [figure: string]: number | undefined;
};

export interface RunResult {
  outputDir: string;
  fit: FitResult<RunEval>;
  trainableParameters: number;
  totalParameters: number;
  /** the last evaluation after training started (null without an eval split) */
  eval: RunEval | null;
  /** the evaluation before the first step, for objectives that make one (reward, DPO, PPO) */
  before?: RunEval;
}

/**
 * One line for an evaluation: loss, accuracy, F1 and perplexity when there, else every figure.
 * @example formatEval({ loss: 0.12, accuracy: 0.97, f1: 0.96, count: 100 }); // 'loss 0.1200, accuracy 97.00%, F1 96.00% on 100 examples'
 */
export function formatEval(e: RunEval): string {
  const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
  const parts: string[] = [];
  if (e.loss !== undefined) parts.push(`loss ${e.loss.toFixed(4)}`);
  if (e.accuracy !== undefined) parts.push(`accuracy ${pct(e.accuracy)}`);
  if (e.f1 !== undefined) parts.push(`F1 ${pct(e.f1)}`);
  if (e.perplexity !== undefined) parts.push(`perplexity ${e.perplexity.toFixed(2)}`);
  const known = new Set(['loss', 'accuracy', 'f1', 'perplexity', 'count']);
  for (const [k, v] of Object.entries(e)) if (!known.has(k) && typeof v === 'number') parts.push(`${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`);
  const unit = e.perplexity !== undefined ? 'target tokens' : 'examples';
  return `${parts.join(', ')}${e.count !== undefined ? ` on ${e.count} ${unit}` : ''}`;
}

/**
 * The artefacts a run folder holds, as the CLI lists them: only what is there.
 * @example runOutputs('runs/dpo'); // ['adapter/ (PEFT)', 'metrics.jsonl', 'loss.svg', 'checkpoint/', 'results.json']
 */
export function runOutputs(outputDir: string): string[] {
  const named: [string, string][] = [
    ['adapter', 'adapter/ (PEFT)'], ['model', 'model/'], ['metrics.jsonl', 'metrics.jsonl'], ['loss.svg', 'loss.svg'], ['ppo.svg', 'ppo.svg'],
    ['ranks.svg', 'ranks.svg'], ['checkpoint', 'checkpoint/'], ['results.json', 'results.json'],
  ];
  return named.filter(([f]) => existsSync(join(outputDir, f))).map(([, label]) => label);
}
