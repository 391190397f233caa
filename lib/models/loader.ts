/**
 * Hugging Face folders <-> models: config.json picks the architecture from the registry, weights
 * are read one tensor at a time by their transformers names, and saving writes what
 * transformers loads (config.json + model.safetensors, atomically).
 */
import { existsSync, readFileSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TunekitError, describe } from '../errors.js';
import { openCheckpointSync, writeSafetensorsSync, type RawTensor } from '../io/safetensors.js';
import { writeJsonAtomicSync } from '../io/atomic.js';
import { architectureFor, type Architecture } from './registry.js';
import './architectures.js';
import { f32FromRaw, rawFromTensor, tensorFromRaw } from './weights.js';
import type { Tensor } from '../tensor/tensor.js';
import { configObject, checkParameterBudget, CONFIG_LIMITS, type PretrainedModel, type Task, type ParameterShapes } from './common.js';
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

/**
 * Reads and parses config.json of a Hugging Face folder: a regular file (a FIFO would block the
 * read forever) of at most MAX_CONFIG_JSON_BYTES holding a JSON object.
 * @example const raw = readConfig('test/fixtures/models/gpt2_lm'); raw.model_type // 'gpt2'
 */
export function readConfig(dir: string): Record<string, unknown> {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new TunekitError('ERR_NOT_FOUND', `no config.json in ${dir}: expected a Hugging Face model folder`);
  const st = statSync(path);
  if (!st.isFile()) throw new TunekitError('ERR_IO', `${path} is not a regular file`);
  if (st.size > MAX_CONFIG_JSON_BYTES) throw new TunekitError('ERR_LIMIT', `${path} is ${st.size} bytes, over the ${MAX_CONFIG_JSON_BYTES}-byte limit for a model config`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new TunekitError('ERR_FORMAT', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  return configObject(parsed, path);
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

/**
 * Compares the checkpoint's tensors (their headers only) with the parameters the config implies,
 * before the model is built: a config whose sizes disagree with the weights fails at once,
 * naming the tensors, without allocating the model it describes.
 */
function checkCheckpointAgainstConfig(dir: string, arch: Architecture, shapes: ParameterShapes, task: Task, newHead = false): void {
  const want = new Map(shapes);
  const seen = new Set<string>();
  const mismatched: string[] = [];
  const ckpt = openCheckpointSync(dir);
  try {
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
  } finally {
    ckpt.close();
  }
  if (mismatched.length) {
    throw new TunekitError('ERR_SHAPE', `${mismatched[0]}${mismatched.length > 1 ? `; and ${mismatched.length - 1} more: ${mismatched.slice(1, 5).join('; ')}${mismatched.length > 5 ? '; ...' : ''}` : ''} (check config.json's sizes against the weights in ${dir})`);
  }
  const missingTrunk = shapes.map(([n]) => n).filter((n) => !seen.has(n) && !isHeadParam(n));
  if (missingTrunk.length) {
    throw new TunekitError('ERR_FORMAT', `checkpoint in ${dir} lacks ${missingTrunk.length} weight(s) the model needs: ${missingTrunk.slice(0, 5).join(', ')}${missingTrunk.length > 5 ? ', ...' : ''} (does config.json describe these weights? e.g. its number of layers)`);
  }
}

/**
 * Loads a pretrained model from a Hugging Face folder, in eval mode (dropout off).
 * @example
 * const { model } = loadPretrained('models/tunekit-gpt2-small', { task: 'seq_cls', numLabels: 2 });
 */
export function loadPretrained(dir: string, opts: LoadOptions = {}): { model: PretrainedModel; report: LoadReport } {
  const raw = { ...readConfig(dir) };
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
  // sizes, parameter count and the checkpoint's shapes are checked before anything is allocated
  const shapes = arch.parameterShapes(config, task);
  checkParameterBudget(config.modelType, shapes);
  // labels given for a task head: a checkpoint head of another size is replaced, not an error
  const newHead = opts.labels !== undefined || opts.numLabels !== undefined;
  checkCheckpointAgainstConfig(dir, arch, shapes, task, newHead);
  // weights the checkpoint provides are never randomly filled first (see lib/nn/init.ts)
  const { value: model, initialise } = withDeferredInit(() => arch.build(config, task));
  let report: LoadReport;
  try {
    report = loadWeights(model, dir, task, { newHead });
  } catch (e) {
    model.dispose();
    throw e;
  }
  // fill what the checkpoint lacked; a tensor shared with a loaded name (tied weights) is loaded
  const missing = new Set(report.initialised);
  const named = model.namedParameters();
  const loadedTensors = new Set(named.filter(([n]) => !missing.has(n)).map(([, p]) => p));
  initialise(named.filter(([n, p]) => missing.has(n) && !loadedTensors.has(p)).map(([, p]) => p));
  model.eval(); // as transformers' from_pretrained: dropout off until a trainer calls train()
  return { model, report };
}

/** Loads checkpoint tensors into an already built model, checking every shape. */
export function loadWeights(model: PretrainedModel, dir: string, task: Task, opts: { newHead?: boolean } = {}): LoadReport {
  const arch = architectureFor(model.config.modelType);
  const params = new Map(model.namedParameters());
  // BatchNorm's running statistics and the like, for architectures whose checkpoints carry them
  const buffers = new Map(arch.savesBuffers ? model.namedBuffers() : []);
  const loaded = new Set<string>();
  const unused: string[] = [];
  const ckpt = openCheckpointSync(dir);
  try {
    noGrad(() => {
      for (const key of ckpt.names) {
        const name = arch.mapKey(key, task);
        if (name === null) continue;
        const p = params.get(name);
        if (!p) {
          const buf = buffers.get(name);
          if (buf) loadBuffer(buf, ckpt.readTensor(key), key);
          else unused.push(key);
          continue;
        }
        const info = ckpt.info(key);
        const sameShape = info.shape.length === p.shape.length && info.shape.every((d, i) => d === p.shape[i]);
        if (!sameShape && opts.newHead && isHeadParam(name)) {
          // the checkpoint's head has other labels: this one stays freshly initialised (reported)
          unused.push(key);
          continue;
        }
        if (!sameShape) {
          throw new TunekitError('ERR_SHAPE', `checkpoint tensor '${key}' has shape [${info.shape}] but the model built from config.json expects [${p.shape}] for '${name}'`);
        }
        if (info.dtype === 'F32' && p.dtype === 'f32' && p.isContiguous) {
          // straight from the file into the parameter's native memory: no intermediate copies
          ckpt.readInto(key, new Uint8Array(p.storage.arrayBuffer(), p.byteOffset, p.numel * 4));
          p.storage.markWritten(); // a write through a view: caches keyed on the version (bf16 copies) refresh
        } else {
          const t = f32FromRaw(ckpt.readTensor(key));
          p.assign(t);
          t.dispose();
        }
        loaded.add(name);
      }
    });
  } finally {
    ckpt.close();
  }
  const initialised = [...params.keys()].filter((n) => !loaded.has(n));
  const missingTrunk = initialised.filter((n) => !isHeadParam(n));
  if (missingTrunk.length) {
    throw new TunekitError('ERR_FORMAT', `checkpoint in ${dir} lacks ${missingTrunk.length} weight(s) the model needs: ${missingTrunk.slice(0, 5).join(', ')}${missingTrunk.length > 5 ? ', ...' : ''}`);
  }
  return { initialised, unused };
}

/** Copies a checkpoint tensor into a buffer of the same shape (converted to the buffer's dtype). */
function loadBuffer(buf: Tensor, raw: RawTensor, key: string): void {
  if (raw.shape.length !== buf.shape.length || raw.shape.some((d, i) => d !== buf.shape[i])) {
    throw new TunekitError('ERR_SHAPE', `checkpoint tensor '${key}' has shape [${raw.shape}] but the model's buffer is [${buf.shape}]`);
  }
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

/**
 * Writes a Hugging Face folder (config.json + model.safetensors) that transformers loads.
 * @example savePretrained(model, 'out/merged', { dtype: 'f32' })
 */
export function savePretrained(model: PretrainedModel, dir: string, opts: { dtype?: DType; extraConfig?: Record<string, unknown> } = {}): void {
  const arch = architectureFor(model.config.modelType);
  mkdirSync(dir, { recursive: true });
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
  writeSafetensorsSync(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const cfg: Record<string, unknown> = { ...model.config.raw, ...opts.extraConfig };
  cfg.architectures = [arch.className(model.task)];
  cfg.model_type = model.config.modelType;
  if (model.task === 'seq_cls' || model.task === 'token_cls' || model.task === 'image_cls') {
    cfg.num_labels = model.config.numLabels;
    if (!cfg.id2label) cfg.id2label = Object.fromEntries(Array.from({ length: model.config.numLabels }, (_, i) => [String(i), `LABEL_${i}`]));
  }
  cfg.torch_dtype = opts.dtype === 'bf16' ? 'bfloat16' : opts.dtype === 'f16' ? 'float16' : 'float32';
  writeJsonAtomicSync(join(dir, 'config.json'), cfg, { indent: 2 });
}
