/**
 * Hugging Face folders <-> models: config.json picks the architecture from the registry, weights
 * are read one tensor at a time by their transformers names, and saving writes what
 * transformers loads (config.json + model.safetensors, atomically).
 *
 * Each entry point has two forms over one plan: `loadPretrained`, `loadWeights`, `readConfig` and
 * `savePretrained` go through fs/promises (the event loop runs while a tensor's bytes arrive; the
 * work between two reads is one tensor's conversion), and the `...Sync` forms block.
 */
import { readFileSync, mkdirSync, statSync, type Stats } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TunekitError, describe } from '../errors.js';
import { openCheckpoint, openCheckpointSync, writeSafetensors, writeSafetensorsSync, type RawTensor, type SafetensorsHeaderView, type SafetensorsReader, type SafetensorsReaderSync } from '../io/safetensors.js';
import { writeJsonAtomic, writeJsonAtomicSync } from '../io/atomic.js';
import { architectureFor, type Architecture } from './registry.js';
import './architectures.js';
import { f32FromRaw, rawFromTensor, tensorFromRaw } from './weights.js';
import type { Tensor } from '../tensor/tensor.js';
import { configObject, checkParameterBudget, CONFIG_LIMITS, type ModelConfig, type PretrainedModel, type Task, type ParameterShapes } from './common.js';
import type { DType } from '../tensor/dtype.js';
import { noGrad } from '../autograd/tape.js';
import { withDeferredInit } from '../nn/init.js';

export interface LoadOptions {
  task?: Task;
  /** labels of a classification head (overrides config.json) */
  numLabels?: number;
  /** label names, index = class id */
  labels?: string[];
}

export interface LoadReport {
  /** parameters not in the checkpoint, freshly initialised (a new task head) */
  initialised: string[];
  /** checkpoint keys that matched nothing */
  unused: string[];
}

/** Largest config.json read (released ones are a few KB; a long id2label list a few MB). */
export const MAX_CONFIG_JSON_BYTES = 16 * 2 ** 20;

/** Checks config.json's stat: a regular file (a FIFO would block the read forever) within the limit. */
function checkConfigFile(path: string, st: Stats): void {
  if (!st.isFile()) throw new TunekitError('ERR_IO', `${path} is not a regular file`);
  if (st.size > MAX_CONFIG_JSON_BYTES) throw new TunekitError('ERR_LIMIT', `${path} is ${st.size} bytes, over the ${MAX_CONFIG_JSON_BYTES}-byte limit for a model config`);
}

function configStatError(dir: string, path: string, e: unknown): TunekitError {
  if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new TunekitError('ERR_NOT_FOUND', `no config.json in ${dir}: expected a Hugging Face model folder`);
  return new TunekitError('ERR_IO', `${path}: cannot read (${(e as Error).message})`);
}

function parseConfigText(path: string, text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new TunekitError('ERR_FORMAT', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  return configObject(parsed, path);
}

/**
 * Reads and parses config.json of a Hugging Face folder: a regular file of at most
 * MAX_CONFIG_JSON_BYTES holding a JSON object.
 * @example const raw = await readConfig('test/fixtures/models/gpt2_lm'); raw.model_type // 'gpt2'
 */
export async function readConfig(dir: string): Promise<Record<string, unknown>> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    checkConfigFile(path, await stat(path));
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw e instanceof TunekitError ? e : configStatError(dir, path, e);
  }
  return parseConfigText(path, text);
}

/**
 * {@link readConfig} with blocking reads.
 * @example const raw = readConfigSync('test/fixtures/models/gpt2_lm'); raw.model_type // 'gpt2'
 */
export function readConfigSync(dir: string): Record<string, unknown> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    checkConfigFile(path, statSync(path));
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw e instanceof TunekitError ? e : configStatError(dir, path, e);
  }
  return parseConfigText(path, text);
}

/** Checks LoadOptions' numLabels / labels (a head of 0 labels once failed deep in a GEMM). */
function checkLabelOptions(opts: LoadOptions): void {
  const max = CONFIG_LIMITS.labels;
  if (opts.numLabels !== undefined && (typeof opts.numLabels !== 'number' || !Number.isInteger(opts.numLabels) || opts.numLabels < 1 || opts.numLabels > max)) {
    throw new TunekitError('ERR_VALUE', `loadPretrained: expected numLabels to be an integer in [1, ${max}] but received ${describe(opts.numLabels)}`);
  }
  if (opts.labels !== undefined && (!Array.isArray(opts.labels) || opts.labels.length < 1 || opts.labels.length > max || opts.labels.some((l) => typeof l !== 'string'))) {
    throw new TunekitError('ERR_VALUE', `loadPretrained: expected labels to be 1 to ${max} label names (strings) but received ${describe(opts.labels)}`);
  }
}

/** What loading builds, decided from config.json and the options before anything is allocated. */
interface ModelPlan {
  arch: Architecture;
  config: ModelConfig;
  task: Task;
  shapes: ParameterShapes;
  /** labels were given for a task head: a checkpoint head of another size is replaced, not an error */
  newHead: boolean;
}

function planModel(rawConfig: Record<string, unknown>, opts: LoadOptions): ModelPlan {
  const raw = { ...rawConfig };
  const task = opts.task ?? 'causal_lm';
  checkLabelOptions(opts);
  if (opts.labels) {
    raw.id2label = Object.fromEntries(opts.labels.map((l, i) => [String(i), l]));
    raw.label2id = Object.fromEntries(opts.labels.map((l, i) => [l, i]));
    raw.num_labels = opts.labels.length;
  } else if (opts.numLabels) {
    raw.num_labels = opts.numLabels;
    delete raw.id2label;
  }
  const arch = architectureFor(raw.model_type);
  const config = arch.parseConfig(raw);
  // sizes and the parameter count are checked before anything is allocated
  const shapes = arch.parameterShapes(config, task);
  checkParameterBudget(config.modelType, shapes);
  return { arch, config, task, shapes, newHead: opts.labels !== undefined || opts.numLabels !== undefined };
}

/**
 * Compares the checkpoint's tensors (their headers only) with the parameters the config implies,
 * before the model is built: a config whose sizes disagree with the weights fails at once,
 * naming the tensors, without allocating the model it describes.
 */
function checkCheckpointAgainstConfig(dir: string, plan: ModelPlan, ckpt: SafetensorsHeaderView): void {
  const { arch, shapes, task, newHead } = plan;
  const want = new Map(shapes);
  const seen = new Set<string>();
  const mismatched: string[] = [];
  for (const key of ckpt.names) {
    const name = arch.mapKey(key, task);
    if (name === null || !want.has(name)) continue;
    seen.add(name);
    const shape = want.get(name)!;
    const got = ckpt.info(key).shape;
    // a classification head for other labels is made anew (transformers' ignore_mismatched_sizes)
    if (newHead && isHeadParam(name)) continue;
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      mismatched.push(`checkpoint tensor '${key}' has shape [${got}] but the model built from config.json expects [${shape}] for '${name}'`);
    }
  }
  if (mismatched.length) {
    throw new TunekitError('ERR_SHAPE', `${mismatched[0]}${mismatched.length > 1 ? `; and ${mismatched.length - 1} more: ${mismatched.slice(1, 5).join('; ')}${mismatched.length > 5 ? '; ...' : ''}` : ''} (check config.json's sizes against the weights in ${dir})`);
  }
  const missingTrunk = shapes.map(([n]) => n).filter((n) => !seen.has(n) && !isHeadParam(n));
  if (missingTrunk.length) {
    throw new TunekitError('ERR_FORMAT', `checkpoint in ${dir} lacks ${missingTrunk.length} weight(s) the model needs: ${missingTrunk.slice(0, 5).join(', ')}${missingTrunk.length > 5 ? ', ...' : ''} (does config.json describe these weights? e.g. its number of layers)`);
  }
}

/** Builds the model with its random fills deferred: weights the checkpoint provides are never filled first (see lib/nn/init.ts). */
function buildDeferred(plan: ModelPlan): { model: PretrainedModel; initialise(params: Iterable<Tensor>): void } {
  const { value: model, initialise } = withDeferredInit(() => plan.arch.build(plan.config, plan.task));
  return { model, initialise };
}

/** Fills what the checkpoint lacked (a tensor shared with a loaded name, tied weights, counts as loaded); eval mode. */
function finishLoad(model: PretrainedModel, initialise: (params: Iterable<Tensor>) => void, report: LoadReport): void {
  const missing = new Set(report.initialised);
  const named = model.namedParameters();
  const loadedTensors = new Set(named.filter(([n]) => !missing.has(n)).map(([, p]) => p));
  initialise(named.filter(([n, p]) => missing.has(n) && !loadedTensors.has(p)).map(([, p]) => p));
  model.eval(); // as transformers' from_pretrained: dropout off until a trainer calls train()
}

/**
 * Loads a pretrained model from a Hugging Face folder, in eval mode (dropout off). Files are read
 * through fs/promises, one tensor at a time: the event loop runs between tensors.
 * @example
 * const { model, report } = await loadPretrained('models/tunekit-gpt2-small', { task: 'seq_cls', numLabels: 2 });
 */
export async function loadPretrained(dir: string, opts: LoadOptions = {}): Promise<{ model: PretrainedModel; report: LoadReport }> {
  const plan = planModel(await readConfig(dir), opts);
  const ckpt = await openCheckpoint(dir);
  try {
    checkCheckpointAgainstConfig(dir, plan, ckpt);
    const { model, initialise } = buildDeferred(plan);
    let report: LoadReport;
    try {
      report = await readWeights(model, ckpt, dir, plan.task, { newHead: plan.newHead });
    } catch (e) {
      model.dispose();
      throw e;
    }
    finishLoad(model, initialise, report);
    return { model, report };
  } finally {
    await ckpt.close();
  }
}

/**
 * {@link loadPretrained} with blocking reads (scripts, synchronous callers).
 * @example
 * const { model } = loadPretrainedSync('models/tunekit-gpt2-small', { task: 'seq_cls', numLabels: 2 });
 */
export function loadPretrainedSync(dir: string, opts: LoadOptions = {}): { model: PretrainedModel; report: LoadReport } {
  const plan = planModel(readConfigSync(dir), opts);
  const ckpt = openCheckpointSync(dir);
  try {
    checkCheckpointAgainstConfig(dir, plan, ckpt);
    const { model, initialise } = buildDeferred(plan);
    let report: LoadReport;
    try {
      report = readWeightsSync(model, ckpt, dir, plan.task, { newHead: plan.newHead });
    } catch (e) {
      model.dispose();
      throw e;
    }
    finishLoad(model, initialise, report);
    return { model, report };
  } finally {
    ckpt.close();
  }
}

/**
 * Loads checkpoint tensors into an already built model, checking every shape before any is read.
 * @example await loadWeights(model, 'runs/x/checkpoint/model', 'causal_lm');
 */
export async function loadWeights(model: PretrainedModel, dir: string, task: Task, opts: { newHead?: boolean } = {}): Promise<LoadReport> {
  const ckpt = await openCheckpoint(dir);
  try {
    return await readWeights(model, ckpt, dir, task, opts);
  } finally {
    await ckpt.close();
  }
}

/**
 * {@link loadWeights} with blocking reads.
 * @example loadWeightsSync(model, 'runs/x/checkpoint/model', 'causal_lm');
 */
export function loadWeightsSync(model: PretrainedModel, dir: string, task: Task, opts: { newHead?: boolean } = {}): LoadReport {
  const ckpt = openCheckpointSync(dir);
  try {
    return readWeightsSync(model, ckpt, dir, task, opts);
  } finally {
    ckpt.close();
  }
}

/**
 * One checkpoint tensor's destination: an f32 parameter read straight into its native memory, a
 * parameter converted from another dtype, or a buffer (BatchNorm statistics and the like).
 */
type WeightStep =
  | { key: string; kind: 'direct'; target: Tensor }
  | { key: string; kind: 'convert'; target: Tensor }
  | { key: string; kind: 'buffer'; target: Tensor };

/** Where every checkpoint tensor goes, with every shape checked and what is missing reported, before any is read. */
function planWeights(model: PretrainedModel, ckpt: SafetensorsHeaderView, dir: string, task: Task, opts: { newHead?: boolean }): { steps: WeightStep[]; report: LoadReport } {
  const arch = architectureFor(model.config.modelType);
  const params = new Map(model.namedParameters());
  // BatchNorm's running statistics and the like, for architectures whose checkpoints carry them
  const buffers = new Map(arch.savesBuffers ? model.namedBuffers() : []);
  const loaded = new Set<string>();
  const unused: string[] = [];
  const steps: WeightStep[] = [];
  for (const key of ckpt.names) {
    const name = arch.mapKey(key, task);
    if (name === null) continue;
    const p = params.get(name);
    const info = ckpt.info(key);
    if (!p) {
      const buf = buffers.get(name);
      if (!buf) {
        unused.push(key);
        continue;
      }
      if (info.shape.length !== buf.shape.length || info.shape.some((d, i) => d !== buf.shape[i])) {
        throw new TunekitError('ERR_SHAPE', `checkpoint tensor '${key}' has shape [${info.shape}] but the model's buffer is [${buf.shape}]`);
      }
      steps.push({ key, kind: 'buffer', target: buf });
      continue;
    }
    const sameShape = info.shape.length === p.shape.length && info.shape.every((d, i) => d === p.shape[i]);
    if (!sameShape && opts.newHead && isHeadParam(name)) {
      // the checkpoint's head has other labels: this one stays freshly initialised (reported)
      unused.push(key);
      continue;
    }
    if (!sameShape) {
      throw new TunekitError('ERR_SHAPE', `checkpoint tensor '${key}' has shape [${info.shape}] but the model built from config.json expects [${p.shape}] for '${name}'`);
    }
    steps.push({ key, kind: info.dtype === 'F32' && p.dtype === 'f32' && p.isContiguous ? 'direct' : 'convert', target: p });
    loaded.add(name);
  }
  const initialised = [...params.keys()].filter((n) => !loaded.has(n));
  const missingTrunk = initialised.filter((n) => !isHeadParam(n));
  if (missingTrunk.length) {
    throw new TunekitError('ERR_FORMAT', `checkpoint in ${dir} lacks ${missingTrunk.length} weight(s) the model needs: ${missingTrunk.slice(0, 5).join(', ')}${missingTrunk.length > 5 ? ', ...' : ''}`);
  }
  return { steps, report: { initialised, unused } };
}

/** The parameter's native memory as bytes: a 'direct' step reads the file straight into it, no intermediate copy. */
function nativeBytes(p: Tensor): Uint8Array {
  return new Uint8Array(p.storage.arrayBuffer(), p.byteOffset, p.numel * 4);
}

/** Copies a tensor read whole into its destination (a 'convert' or 'buffer' step). */
function applyRaw(step: WeightStep, raw: RawTensor): void {
  noGrad(() => {
    if (step.kind === 'buffer') {
      loadBuffer(step.target, raw);
      return;
    }
    const t = f32FromRaw(raw);
    step.target.assign(t);
    t.dispose();
  });
}

async function readWeights(model: PretrainedModel, ckpt: SafetensorsReader, dir: string, task: Task, opts: { newHead?: boolean }): Promise<LoadReport> {
  const { steps, report } = planWeights(model, ckpt, dir, task, opts);
  for (const step of steps) {
    if (step.kind === 'direct') {
      await ckpt.readInto(step.key, nativeBytes(step.target));
      step.target.storage.markWritten(); // a write through a view: caches keyed on the version (bf16 copies) refresh
    } else {
      applyRaw(step, await ckpt.readTensor(step.key));
    }
  }
  return report;
}

function readWeightsSync(model: PretrainedModel, ckpt: SafetensorsReaderSync, dir: string, task: Task, opts: { newHead?: boolean }): LoadReport {
  const { steps, report } = planWeights(model, ckpt, dir, task, opts);
  for (const step of steps) {
    if (step.kind === 'direct') {
      ckpt.readInto(step.key, nativeBytes(step.target));
      step.target.storage.markWritten();
    } else {
      applyRaw(step, ckpt.readTensor(step.key));
    }
  }
  return report;
}

/** Copies a checkpoint tensor into a buffer of the same shape (checked by planWeights), converted to the buffer's dtype. */
function loadBuffer(buf: Tensor, raw: RawTensor): void {
  const t = tensorFromRaw(raw);
  const c = t.dtype === buf.dtype ? t : t.castRaw(buf.dtype);
  buf.assign(c);
  if (c !== t) c.dispose();
  t.dispose();
}

/** Task heads that may legitimately be absent from a base checkpoint. */
function isHeadParam(name: string): boolean {
  return /^(score|classifier|lm_head|qa_outputs)\./.test(name) || /^bert\.pooler\./.test(name);
}

/** What savePretrained writes: the tensors of model.safetensors and config.json. */
function pretrainedFiles(model: PretrainedModel, opts: SaveOptions): { tensors: RawTensor[]; config: Record<string, unknown> } {
  const arch = architectureFor(model.config.modelType);
  const tensors: RawTensor[] = [];
  for (const [name, p] of model.namedParameters()) {
    if (arch.skipOnSave?.(name, model.config)) continue;
    tensors.push(rawFromTensor(arch.saveKey(name, model.task), p, opts.dtype ?? 'f32'));
  }
  if (arch.savesBuffers) {
    // running statistics in the weights' dtype (torch's model.to(dtype) converts float buffers
    // too); counters keep their integer dtype
    for (const [name, b] of model.namedBuffers()) tensors.push(rawFromTensor(arch.saveKey(name, model.task), b, b.dtype === 'f32' ? (opts.dtype ?? 'f32') : b.dtype));
  }
  const cfg: Record<string, unknown> = { ...model.config.raw, ...opts.extraConfig };
  cfg.architectures = [arch.className(model.task)];
  cfg.model_type = model.config.modelType;
  if (model.task === 'seq_cls' || model.task === 'token_cls' || model.task === 'image_cls') {
    cfg.num_labels = model.config.numLabels;
    if (!cfg.id2label) cfg.id2label = Object.fromEntries(Array.from({ length: model.config.numLabels }, (_, i) => [String(i), `LABEL_${i}`]));
  }
  cfg.torch_dtype = opts.dtype === 'bf16' ? 'bfloat16' : opts.dtype === 'f16' ? 'float16' : 'float32';
  return { tensors, config: cfg };
}

/** Options of {@link savePretrained}. */
export interface SaveOptions {
  /** dtype of the saved weights (f32 by default; bf16 halves the file) */
  dtype?: DType;
  /** fields added to config.json (e.g. id2label) */
  extraConfig?: Record<string, unknown>;
}

/**
 * Writes a Hugging Face folder (config.json + model.safetensors) that transformers loads, each
 * file atomically, through fs/promises.
 * @example await savePretrained(model, 'out/merged', { dtype: 'f32' })
 */
export async function savePretrained(model: PretrainedModel, dir: string, opts: SaveOptions = {}): Promise<void> {
  const { tensors, config } = pretrainedFiles(model, opts);
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  await writeJsonAtomic(join(dir, 'config.json'), config, { indent: 2 });
}

/**
 * {@link savePretrained} with blocking writes.
 * @example savePretrainedSync(model, 'out/merged', { dtype: 'bf16' })
 */
export function savePretrainedSync(model: PretrainedModel, dir: string, opts: SaveOptions = {}): void {
  const { tensors, config } = pretrainedFiles(model, opts);
  mkdirSync(dir, { recursive: true });
  writeSafetensorsSync(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  writeJsonAtomicSync(join(dir, 'config.json'), config, { indent: 2 });
}
