/**
 * Type tests of the public API as a user sees it: imports of 'tunekit' and its subpaths resolve
 * through package.json "exports" to the published types (dist/*.d.ts). Checked by the compiler
 * only (tsc -p test/tsconfig.json, in test/packaging/ci_checks.test.ts); vitest does not run
 * *.test-d.ts files. A `@ts-expect-error` line fails the check when the error goes away.
 */
import { expectTypeOf } from 'vitest';
import * as tunekit from 'tunekit';
import {
  TunekitError, tidy, tidyAsync, keep, backendInfo, memoryStats, setNumThreads, getNumThreads, resetPeakMemory,
  loadPretrainedSync, Trainer, rlhf, quant, data, io, zeros,
  type TunekitErrorCode, type BackendInfo, type MemoryStats, type TrainerOptions, type TrainSettings, type LoraConfigInput, type Tensor,
  type PretrainedModel,
} from 'tunekit';
import * as rlhfEntry from 'tunekit/rlhf';
import * as quantEntry from 'tunekit/quant';
import * as dataEntry from 'tunekit/data';
import * as ioEntry from 'tunekit/io';

// ---- errors: the code is the union, and only its members construct an error
expectTypeOf<TunekitError['code']>().toEqualTypeOf<TunekitErrorCode>();
expectTypeOf<'ERR_CONFIG' | 'ERR_FORMAT' | 'ERR_VALUE' | 'ERR_IO' | 'ERR_NOT_FOUND' | 'ERR_LIMIT' | 'ERR_BACKEND'>().toExtend<TunekitErrorCode>();
expectTypeOf<string>().not.toExtend<TunekitErrorCode>();
// @ts-expect-error: not a tunekit error code
new TunekitError('ERR_NOPE', 'unknown code');
declare const caught: unknown;
if (caught instanceof TunekitError && caught.code === 'ERR_SHAPE') expectTypeOf(caught.code).toEqualTypeOf<'ERR_SHAPE'>();

// ---- the raw native binding is not public; its public part is the backend functions
expectTypeOf<'native' extends keyof typeof tunekit ? true : false>().toEqualTypeOf<false>();
expectTypeOf(backendInfo).returns.toEqualTypeOf<BackendInfo>();
expectTypeOf<BackendInfo['addon']['kind']>().toEqualTypeOf<'prebuild' | 'source build'>();
expectTypeOf<BackendInfo['gemmKernel']>().toEqualTypeOf<string>();
expectTypeOf(memoryStats).returns.toEqualTypeOf<MemoryStats>();
expectTypeOf<MemoryStats>().toEqualTypeOf<{ liveBytes: number; peakBytes: number }>();
expectTypeOf(setNumThreads).parameters.toEqualTypeOf<[n: number]>();
expectTypeOf(getNumThreads).returns.toEqualTypeOf<number>();
expectTypeOf(resetPeakMemory).returns.toEqualTypeOf<void>();

// ---- memory scopes keep the function's type; tidy takes a synchronous function
expectTypeOf(tidy(() => 1)).toEqualTypeOf<number>();
expectTypeOf(tidy(() => zeros([2]))).toEqualTypeOf<Tensor<'f32'>>();
expectTypeOf(tidyAsync(async () => 'x')).toEqualTypeOf<Promise<string>>();
expectTypeOf(keep<Tensor<'f32'>>).returns.toEqualTypeOf<Tensor<'f32'>>();

// ---- subpaths are the root's namespaces, object for object
expectTypeOf(rlhfEntry.DpoTrainer).toEqualTypeOf(rlhf.DpoTrainer);
expectTypeOf(quantEntry.quantizeModel).toEqualTypeOf(quant.quantizeModel);
expectTypeOf(dataEntry.buildLabelMap).toEqualTypeOf(data.buildLabelMap);
expectTypeOf(ioEntry.openSafetensorsSync).toEqualTypeOf(io.openSafetensorsSync);

// ---- naming (docs/api.md): PEFT / file configs snake_case, API options camelCase
expectTypeOf<LoraConfigInput>().toHaveProperty('lora_alpha');
expectTypeOf<LoraConfigInput>().toHaveProperty('target_modules');
expectTypeOf<TrainerOptions>().toHaveProperty('padTokenId');
expectTypeOf<TrainSettings>().toHaveProperty('batchSize');
expectTypeOf<TrainSettings>().toHaveProperty('maxSteps');

// ---- loading and training (I/O is synchronous in this version; docs/api.md)
expectTypeOf(loadPretrainedSync).returns.toHaveProperty('model').toEqualTypeOf<PretrainedModel>();
expectTypeOf<InstanceType<typeof Trainer>['fit']>().returns.toExtend<Promise<unknown>>();
