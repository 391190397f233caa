/** What a training job returns (lib/train/run.ts and lib/rlhf/run.ts). */
import type { FitResult } from './trainer.js';

export interface RunResult {
  outputDir: string;
  fit: FitResult;
  trainableParameters: number;
  totalParameters: number;
  /** final eval metrics */
  eval: FitResult['evals'][number]['result'] | null;
  baseEval?: FitResult['evals'][number]['result'];
}
