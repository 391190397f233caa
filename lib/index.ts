/**
 * tunekit: fine-tune pretrained models from Node.js.
 * @example
 * import { loadPretrained, LoraModel, Trainer } from 'tunekit';
 */
import './autograd/index.js';
export * from './tensor/index.js';
export * from './autograd/index.js';
export * from './nn/index.js';
export * from './models/index.js';
export * from './peft/index.js';
export { Tokenizer, trainByteLevelBpe, saveTrainedBpe, applyChatTemplate } from './tokenizer/index.js';
export * as data from './data/index.js';
export { Trainer, type TrainSettings, type FitResult, type EvalResult, type TrainerOptions, type TrainerCallbacks } from './train/trainer.js';
export { SupervisedObjective } from './train/objectives/supervised.js';
export type { Objective, StepPlan, MicroBatch, MicroLoss, Figures } from './train/objective.js';
export { AdamW, clipGradNorm, gradNorm } from './train/optimizer.js';
export { runTraining, type RunResult } from './train/run.js';
export * as distributed from './train/distributed/index.js';
export { loadConfig, type TrainConfig } from './train/config.js';
export { pretrainBase } from './train/pretrain.js';
export { resolveModelPath, builtinModelsDir, DEFAULT_BASE_MODEL } from './models/builtin.js';
export { generate, type GenerateOptions, type GenerateResult } from './models/generate.js';
export * as io from './io/index.js';
export { TunekitError, type TunekitErrorCode } from './errors.js';
// the raw native binding (lib/native.ts) is internal: its public part is backend.ts
export { backendInfo, setNumThreads, getNumThreads, setComputeDtype, getComputeDtype, memoryStats, resetPeakMemory, type BackendInfo, type MemoryStats } from './backend.js';
export * as rlhf from './rlhf/index.js';
export * as quant from './quant/index.js';
