/**
 * Hugging Face folders <-> models: config.json picks the architecture from the registry, weights
 * are read one tensor at a time by their transformers names, and saving writes what
 * transformers loads (config.json + model.safetensors, atomically).
 */
import { existsSync, readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TunekitError } from '../errors.js';
import { openCheckpoint, writeSafetensors, type RawTensor } from '../io/safetensors.js';
import { writeJsonAtomicSync } from '../io/atomic.js';
import { architectureFor } from './registry.js';
import './architectures.js';
import { f32FromRaw, rawFromTensor } from './weights.js';
import type { PretrainedModel, Task } from './common.js';
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

/** Reads and parses config.json of a Hugging Face folder. */
export function readConfig(dir: string): Record<string, unknown> {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new TunekitError('ERR_NOT_FOUND', `no config.json in ${dir}: expected a Hugging Face model folder`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new TunekitError('ERR_FORMAT', `${path} is not valid JSON: ${(e as Error).message}`);
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
  // weights the checkpoint provides are never randomly filled first (see lib/nn/init.ts)
  const { value: model, initialise } = withDeferredInit(() => arch.build(config, task));
  let report: LoadReport;
  try {
    report = loadWeights(model, dir, task);
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
export function loadWeights(model: PretrainedModel, dir: string, task: Task): LoadReport {
  const arch = architectureFor(model.config.modelType);
  const params = new Map(model.namedParameters());
  const loaded = new Set<string>();
  const unused: string[] = [];
  const ckpt = openCheckpoint(dir);
  try {
    noGrad(() => {
      for (const key of ckpt.names) {
        const name = arch.mapKey(key, task);
        if (name === null) continue;
        const p = params.get(name);
        if (!p) {
          unused.push(key);
          continue;
        }
        const info = ckpt.info(key);
        if (info.shape.length !== p.shape.length || info.shape.some((d, i) => d !== p.shape[i])) {
          throw new TunekitError('ERR_SHAPE', `checkpoint tensor '${key}' has shape [${info.shape}] but the model built from config.json expects [${p.shape}] for '${name}'`);
        }
        if (info.dtype === 'F32' && p.dtype === 'f32' && p.isContiguous) {
          // straight from the file into the parameter's native memory: no intermediate copies
          ckpt.readInto(key, new Uint8Array(p.storage.arrayBuffer(), p.byteOffset, p.numel * 4));
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
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const cfg: Record<string, unknown> = { ...model.config.raw, ...opts.extraConfig };
  cfg.architectures = [arch.className(model.task)];
  cfg.model_type = model.config.modelType;
  if (model.task === 'seq_cls' || model.task === 'token_cls') {
    cfg.num_labels = model.config.numLabels;
    if (!cfg.id2label) cfg.id2label = Object.fromEntries(Array.from({ length: model.config.numLabels }, (_, i) => [String(i), `LABEL_${i}`]));
  }
  cfg.torch_dtype = opts.dtype === 'bf16' ? 'bfloat16' : opts.dtype === 'f16' ? 'float16' : 'float32';
  writeJsonAtomicSync(join(dir, 'config.json'), cfg, { indent: 2 });
}
