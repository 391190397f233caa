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
  loadPretrained, loadPretrainedSync, Tokenizer, LoraModel, Trainer, generate, rlhf, quant, data, io, zeros,
  type TunekitErrorCode, type BackendInfo, type MemoryStats, type TrainerOptions, type TrainSettings, type LoraConfigInput, type Tensor,
  type PretrainedModel, type TokenizerLike, type GenerateOptions, type GenerateResult, type LoadReport,
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

// ---- I/O returns promises; the blocking forms are ...Sync (docs/api.md)
expectTypeOf(loadPretrained).returns.toEqualTypeOf<Promise<{ model: PretrainedModel; report: LoadReport }>>();
expectTypeOf(loadPretrainedSync).returns.toEqualTypeOf<{ model: PretrainedModel; report: LoadReport }>();
expectTypeOf(Tokenizer.fromFolder).returns.toEqualTypeOf<Promise<Tokenizer>>();
expectTypeOf(Tokenizer.fromFolderSync).returns.toEqualTypeOf<Tokenizer>();
expectTypeOf(quant.quantizeModel).returns.toExtend<Promise<unknown>>();
expectTypeOf(quant.quantizeModelSync).returns.not.toExtend<Promise<unknown>>();
expectTypeOf(quant.loadNf4Pretrained).returns.toExtend<Promise<{ model: PretrainedModel }>>();
expectTypeOf(quant.saveNf4Pretrained).returns.toExtend<Promise<unknown>>();
expectTypeOf(LoraModel.fromPretrained).returns.toEqualTypeOf<Promise<LoraModel>>();
expectTypeOf(LoraModel.fromPretrainedSync).returns.toEqualTypeOf<LoraModel>();
expectTypeOf<LoraModel['saveAdapter']>().returns.toEqualTypeOf<Promise<void>>();
expectTypeOf<LoraModel['saveAdapterSync']>().returns.toEqualTypeOf<void>();
expectTypeOf(io.openCheckpoint).returns.toEqualTypeOf<Promise<io.SafetensorsReader>>();
expectTypeOf<io.SafetensorsReader['readTensor']>().returns.toEqualTypeOf<Promise<io.RawTensor>>();
expectTypeOf<InstanceType<typeof Trainer>['fit']>().returns.toExtend<Promise<unknown>>();
expectTypeOf<InstanceType<typeof Trainer>['saveCheckpoint']>().returns.toEqualTypeOf<Promise<string>>();
expectTypeOf<InstanceType<typeof Trainer>['saveCheckpointSync']>().returns.toEqualTypeOf<string>();
expectTypeOf<InstanceType<typeof Trainer>['loadCheckpoint']>().returns.toEqualTypeOf<Promise<void>>();
expectTypeOf<InstanceType<typeof Trainer>['loadCheckpointSync']>().returns.toEqualTypeOf<void>();
expectTypeOf<LoraModel['writeRunReport']>().returns.toEqualTypeOf<Promise<string[]>>();
expectTypeOf(tunekit.PromptTuningModel.create).returns.toEqualTypeOf<Promise<tunekit.PromptTuningModel>>();
// prompt tuning's TEXT init takes a Tokenizer, or any object with a TokenizerLike's encode
expectTypeOf<Tokenizer>().toExtend<NonNullable<tunekit.PromptTuningOptions['tokenizer']>>();
expectTypeOf<{ encode: TokenizerLike['encode'] }>().toExtend<NonNullable<tunekit.PromptTuningOptions['tokenizer']>>();

// ---- generate(model, inputIds, { tokenizer, ...settings }): one options object
expectTypeOf(generate).parameters.toEqualTypeOf<[model: PretrainedModel, inputIds: number[][], opts?: GenerateOptions]>();
expectTypeOf(generate).returns.toEqualTypeOf<Promise<GenerateResult>>();
expectTypeOf<GenerateOptions['tokenizer']>().toEqualTypeOf<TokenizerLike | null | undefined>();
declare const model: PretrainedModel;
declare const tok: Tokenizer;
// @ts-expect-error: the tokenizer goes in the options, not before the ids
void generate(model, tok, [[1, 2]]);

// ---- one TokenizerLike: a Tokenizer is one as it is, and so is a plain object; the data builders take either
expectTypeOf<Tokenizer>().toExtend<TokenizerLike>();
expectTypeOf<TokenizerLike>().toEqualTypeOf<data.TokenizerLike>();
const chars = { encode: (s: string) => ({ ids: [...s].map((c) => c.charCodeAt(0)) }), decode: (ids: readonly number[]) => String.fromCharCode(...ids), eosTokenId: 0 };
expectTypeOf(chars).toExtend<TokenizerLike>();
declare const records: data.NormalizedRecord[];
declare const labels: data.LabelMap;
expectTypeOf(data.buildClassificationExamples(records, tok, labels, { maxLength: 128 })).toEqualTypeOf<data.ClassificationExample[]>();
expectTypeOf(data.buildClassificationExamples(records, chars, labels)).toEqualTypeOf<data.ClassificationExample[]>();
// @ts-expect-error: an object without decode is not a TokenizerLike (the quick start's old `enc` adapter)
data.buildClassificationExamples(records, { encode: chars.encode, eosTokenId: 0 }, labels);
