/**
 * NF4 checkpoints in the layout transformers + bitsandbytes save for a `load_in_4bit` model:
 * per quantized linear layer `<m>.weight` (u8 [(n+1)/2, 1]), `<m>.weight.absmax` (u8 codes with
 * double quantization, else f32), `<m>.weight.quant_map` (f32 [16]), `<m>.weight.nested_absmax`,
 * `<m>.weight.nested_quant_map` (f32 [256]), and `<m>.weight.quant_state.bitsandbytes__nf4`
 * (u8 bytes of json.dumps({quant_type, blocksize, dtype, shape, nested_blocksize, nested_dtype,
 * nested_offset})), plus config.json's `quantization_config` (BitsAndBytesConfig). Everything else
 * is a dense tensor under its usual key.
 *
 * @example
 * await saveNf4Pretrained(model, 'out/gpt2-nf4');
 * const { model: back } = await loadNf4Pretrained('out/gpt2-nf4');
 */
import { mkdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { TunekitError } from '../errors.js';
import { openCheckpoint, openCheckpointSync, writeSafetensors, writeSafetensorsSync, type RawTensor, type SafetensorsHeaderView } from '../io/safetensors.js';
import { writeFileAtomic, writeFileAtomicSync } from '../io/atomic.js';
import { architectureFor } from '../models/registry.js';
import { readConfig, readConfigSync, loadWeights, loadWeightsSync, type LoadOptions, type LoadReport } from '../models/loader.js';
import { rawFromTensor } from '../models/weights.js';
import type { PretrainedModel, Task } from '../models/common.js';
import type { DType } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { Linear } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { noGrad } from '../autograd/tape.js';
import { NF4Tensor, codebook, dynamicMap, NESTED_BLOCKSIZE, type AbsmaxState, type QuantType } from '../tensor/nf4.js';
import { NF4Linear } from './nf4_linear.js';

const STATE_SUFFIX = /\.quant_state\.bitsandbytes__(nf4|fp4)$/;

/** The quant_state JSON bytes exactly as bitsandbytes writes them (Python json.dumps separators). */
export function quantStateBytes(q: NF4Tensor): Uint8Array {
  const st = q.absmaxState;
  // Python's json.dumps writes ", " and ": " and floats with repr (shortest round trip, always a
  // '.' or an exponent): match it so the bytes are identical.
  const parts: string[] = [
    `"quant_type": ${JSON.stringify(q.quantType)}`,
    `"blocksize": ${q.blocksize}`,
    `"dtype": ${JSON.stringify(q.dtype)}`,
    `"shape": [${q.shape.join(', ')}]`,
  ];
  if (st.kind === 'double') {
    parts.push(`"nested_blocksize": ${NESTED_BLOCKSIZE}`, `"nested_dtype": "float32"`, `"nested_offset": ${pyFloat(st.offset)}`);
  }
  return new TextEncoder().encode(`{${parts.join(', ')}}`);
}

/** Python's repr of a float (the value is an fp32 widened to double, as torch's .item()). */
export function pyFloat(v: number): string {
  if (!Number.isFinite(v)) throw new TunekitError('ERR_VALUE', `nested_offset must be finite but is ${v}`);
  if (v === 0) return Object.is(v, -0) ? '-0.0' : '0.0';
  // shortest round-trip digits (both languages use them), laid out as Python's repr does:
  // fixed notation for 1e-4 <= |v| < 1e16, else d.ddde-XX
  const [mant, expS] = v.toExponential().split('e') as [string, string];
  const exp = Number(expS);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  let body: string;
  if (exp >= -4 && exp < 16) {
    if (exp >= digits.length - 1) body = `${digits}${'0'.repeat(exp - digits.length + 1)}.0`;
    else if (exp >= 0) body = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
    else body = `0.${'0'.repeat(-exp - 1)}${digits}`;
  } else {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    body = `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return neg ? `-${body}` : body;
}

function raw(name: string, t: Tensor): RawTensor {
  return rawFromTensor(name, t);
}

/** The bitsandbytes tensors of one NF4 weight under key `<m>.weight`. */
export function nf4StateTensors(key: string, q: NF4Tensor): RawTensor[] {
  const out: RawTensor[] = [raw(key, q.packed)];
  const st = q.absmaxState;
  const book = codebook(q.quantType);
  out.push({ name: `${key}.quant_map`, dtype: 'F32', shape: [16], bytes: new Uint8Array(book.buffer) });
  if (st.kind === 'f32') {
    out.push(raw(`${key}.absmax`, st.absmax));
  } else {
    out.push(raw(`${key}.absmax`, st.q));
    out.push(raw(`${key}.nested_absmax`, st.nestedAbsmax));
    const dm = dynamicMap();
    out.push({ name: `${key}.nested_quant_map`, dtype: 'F32', shape: [256], bytes: new Uint8Array(dm.buffer) });
  }
  const js = quantStateBytes(q);
  out.push({ name: `${key}.quant_state.bitsandbytes__${q.quantType}`, dtype: 'U8', shape: [js.length], bytes: js });
  return out;
}

function f32Array(r: RawTensor, what: string): Float32Array {
  if (r.dtype !== 'F32') throw new TunekitError('ERR_FORMAT', `${what}: expected F32 but the file holds ${r.dtype}`);
  return new Float32Array(r.bytes.slice().buffer);
}

function tensorOf<D extends 'u8' | 'f32'>(r: RawTensor, dtype: D, shape: number[]): Tensor<D> {
  const t = Tensor.empty(shape, dtype);
  t.copyFrom(r.bytes);
  return t;
}

/**
 * Builds an NF4Tensor from bitsandbytes tensors (`get(suffix)` returns `<m>.weight<suffix>`).
 * Checks the quant map against our codebook (the kernels use the built-in one).
 */
export function nf4FromState(key: string, get: (suffix: string) => RawTensor | undefined): NF4Tensor {
  const stateRaw = get('.quant_state.bitsandbytes__nf4') ?? get('.quant_state.bitsandbytes__fp4');
  if (!stateRaw) throw new TunekitError('ERR_FORMAT', `${key}: no quant_state.bitsandbytes__nf4/fp4 entry`);
  let st: Record<string, unknown>;
  try {
    st = JSON.parse(new TextDecoder().decode(stateRaw.bytes)) as Record<string, unknown>;
  } catch (e) {
    throw new TunekitError('ERR_FORMAT', `${key}.quant_state is not JSON: ${(e as Error).message}`);
  }
  const quantType = st.quant_type as QuantType;
  if (quantType !== 'nf4' && quantType !== 'fp4') throw new TunekitError('ERR_FORMAT', `${key}: quant_type '${String(st.quant_type)}' is not nf4 or fp4`);
  const blocksize = Number(st.blocksize);
  const shape = st.shape as number[];
  if (!Array.isArray(shape) || shape.length !== 2) throw new TunekitError('ERR_FORMAT', `${key}: quant_state shape ${JSON.stringify(st.shape)} is not 2-D`);
  const n = shape[0]! * shape[1]!;
  const nb = Math.ceil(n / blocksize);
  const packedRaw = get('')!;
  if (packedRaw.dtype !== 'U8' || packedRaw.bytes.length !== (n + 1) >> 1) {
    throw new TunekitError('ERR_FORMAT', `${key}: expected ${(n + 1) >> 1} packed u8 bytes for shape [${shape}] but the file holds ${packedRaw.dtype} [${packedRaw.shape}]`);
  }
  const qm = get('.quant_map');
  if (qm) {
    const book = codebook(quantType), file = f32Array(qm, `${key}.quant_map`);
    if (file.length !== 16 || file.some((v, i) => v !== book[i])) throw new TunekitError('ERR_FORMAT', `${key}.quant_map differs from the ${quantType} codebook tunekit's kernels use`);
  }
  const absRaw = get('.absmax');
  if (!absRaw) throw new TunekitError('ERR_FORMAT', `${key}: no absmax`);
  let state: AbsmaxState;
  if ('nested_offset' in st || absRaw.dtype === 'U8') {
    const nested = get('.nested_absmax');
    if (!nested || absRaw.dtype !== 'U8') throw new TunekitError('ERR_FORMAT', `${key}: double-quantized state needs u8 absmax and nested_absmax`);
    if (Number(st.nested_blocksize ?? NESTED_BLOCKSIZE) !== NESTED_BLOCKSIZE) throw new TunekitError('ERR_FORMAT', `${key}: nested_blocksize ${String(st.nested_blocksize)} is not supported (only 256)`);
    const nqm = get('.nested_quant_map');
    if (nqm) {
      const dm = dynamicMap(), file = f32Array(nqm, `${key}.nested_quant_map`);
      if (file.length !== 256 || file.some((v, i) => v !== dm[i])) throw new TunekitError('ERR_FORMAT', `${key}.nested_quant_map differs from bitsandbytes' signed dynamic map`);
    }
    if (absRaw.bytes.length !== nb || nested.bytes.length !== Math.ceil(nb / NESTED_BLOCKSIZE) * 4) throw new TunekitError('ERR_FORMAT', `${key}: absmax sizes do not fit ${nb} blocks`);
    state = { kind: 'double', q: tensorOf(absRaw, 'u8', [nb]), nestedAbsmax: tensorOf(nested, 'f32', [Math.ceil(nb / NESTED_BLOCKSIZE)]), offset: Number(st.nested_offset) };
  } else {
    if (absRaw.dtype !== 'F32' || absRaw.bytes.length !== nb * 4) throw new TunekitError('ERR_FORMAT', `${key}: expected f32 absmax [${nb}]`);
    state = { kind: 'f32', absmax: tensorOf(absRaw, 'f32', [nb]) };
  }
  const packed = tensorOf(packedRaw, 'u8', [(n + 1) >> 1, 1]);
  return new NF4Tensor(packed, state, [shape[0]!, shape[1]!], blocksize, quantType, String(st.dtype ?? 'float32'));
}

/**
 * Fields of BitsAndBytesConfig that transformers' post_init type-checks as Python floats
 * (`isinstance(x, float)`): JSON from JavaScript writes 6 for 6.0, which Python reads as an int.
 */
const PYTHON_FLOAT_FIELDS = ['llm_int8_threshold'] as const;

/**
 * config.json text for a 4-bit model: JSON (indent 2) with the quantization_config's float
 * fields written with a decimal point (`"llm_int8_threshold": 6.0`), so that transformers'
 * BitsAndBytesConfig accepts it.
 */
export function nf4ConfigJson(cfg: Record<string, unknown>): string {
  let text = JSON.stringify(cfg, null, 2);
  for (const field of PYTHON_FLOAT_FIELDS) {
    // JSON.stringify writes integral numbers without a fraction or exponent: add ".0"
    text = text.replace(new RegExp(`("${field}": )(-?\\d+)(?=[,\\n}])`, 'g'), '$1$2.0');
  }
  return text + '\n';
}

/** transformers' BitsAndBytesConfig dict for config.json. */
export function quantizationConfig(model: Module, skip: string[] = []): Record<string, unknown> {
  const first = model.namedModules().find(([, m]) => m instanceof NF4Linear)?.[1] as NF4Linear | undefined;
  const q = first?.qweight;
  return {
    quant_method: 'bitsandbytes',
    load_in_4bit: true,
    load_in_8bit: false,
    bnb_4bit_quant_type: q?.quantType ?? 'nf4',
    bnb_4bit_use_double_quant: q?.doubleQuant ?? true,
    bnb_4bit_compute_dtype: q?.dtype ?? 'float32',
    bnb_4bit_quant_storage: 'uint8',
    llm_int8_skip_modules: skip.length ? skip : null,
    llm_int8_threshold: 6.0,
    llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false,
    // tunekit's own record of the block size (transformers always uses 64)
    _tunekit_blocksize: q?.blocksize ?? 64,
  };
}

/** What saveNf4Pretrained writes: model.safetensors' tensors and config.json's text. */
function nf4Files(model: PretrainedModel, opts: { dtype?: DType }): { tensors: RawTensor[]; configText: string } {
  const arch = architectureFor(model.config.modelType);
  const tensors: RawTensor[] = [];
  for (const [name, p] of model.namedParameters()) {
    if (arch.skipOnSave?.(name, model.config)) continue;
    tensors.push(rawFromTensor(arch.saveKey(name, model.task), p, opts.dtype ?? 'f32'));
  }
  for (const [path, m] of model.namedModules()) {
    if (m instanceof NF4Linear) tensors.push(...nf4StateTensors(arch.saveKey(`${path}.weight`, model.task), m.qweight));
  }
  const cfg: Record<string, unknown> = { ...model.config.raw };
  cfg.architectures = [arch.className(model.task)];
  cfg.model_type = model.config.modelType;
  if (model.task === 'seq_cls' || model.task === 'token_cls') {
    cfg.num_labels = model.config.numLabels;
    if (!cfg.id2label) cfg.id2label = Object.fromEntries(Array.from({ length: model.config.numLabels }, (_, i) => [String(i), `LABEL_${i}`]));
  }
  cfg.torch_dtype = opts.dtype === 'bf16' ? 'bfloat16' : opts.dtype === 'f16' ? 'float16' : 'float32';
  cfg.quantization_config = quantizationConfig(model);
  return { tensors, configText: nf4ConfigJson(cfg) };
}

const totalBytes = (tensors: RawTensor[]) => tensors.reduce((s, t) => s + t.bytes.length, 0);

/**
 * Writes a quantized model as transformers + bitsandbytes save a load_in_4bit model: NF4 layers
 * in bitsandbytes' keys, everything else dense (dtype, default f32); through fs/promises.
 * @example const { bytes } = await saveNf4Pretrained(model, 'out/gpt2-nf4');
 */
export async function saveNf4Pretrained(model: PretrainedModel, dir: string, opts: { dtype?: DType } = {}): Promise<{ bytes: number }> {
  const { tensors, configText } = nf4Files(model, opts);
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  await writeFileAtomic(join(dir, 'config.json'), configText);
  return { bytes: totalBytes(tensors) };
}

/**
 * {@link saveNf4Pretrained} with blocking writes.
 * @example saveNf4PretrainedSync(model, 'out/gpt2-nf4');
 */
export function saveNf4PretrainedSync(model: PretrainedModel, dir: string, opts: { dtype?: DType } = {}): { bytes: number } {
  const { tensors, configText } = nf4Files(model, opts);
  mkdirSync(dir, { recursive: true });
  writeSafetensorsSync(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  writeFileAtomicSync(join(dir, 'config.json'), configText);
  return { bytes: totalBytes(tensors) };
}

function isNf4Config(raw: Record<string, unknown>): boolean {
  const qc = raw.quantization_config as Record<string, unknown> | undefined;
  return !!qc && qc.quant_method === 'bitsandbytes' && qc.load_in_4bit === true;
}

/**
 * Whether a folder holds a 4-bit bitsandbytes checkpoint (config.json quantization_config).
 * @example if (await isNf4Checkpoint(dir)) ({ model } = await loadNf4Pretrained(dir));
 */
export async function isNf4Checkpoint(dir: string): Promise<boolean> {
  return isNf4Config(await readConfig(dir));
}

/**
 * {@link isNf4Checkpoint} with a blocking read.
 * @example isNf4CheckpointSync('out/gpt2-nf4') // true
 */
export function isNf4CheckpointSync(dir: string): boolean {
  return isNf4Config(readConfigSync(dir));
}

/** A quantized layer of the checkpoint: its state key, file key, and the Linear it replaces. */
interface Nf4Target {
  key: string;
  path: string;
  parent: Module;
  child: string;
  lin: Linear;
}

/** The model built from config.json with every Linear the checkpoint holds a quant state for. */
function planNf4Load(rawConfig: Record<string, unknown>, opts: LoadOptions, ckpt: SafetensorsHeaderView) {
  const rawCfg = { ...rawConfig };
  const task = opts.task ?? 'causal_lm';
  if (opts.labels) {
    rawCfg.id2label = Object.fromEntries(opts.labels.map((l, i) => [String(i), l]));
    rawCfg.label2id = Object.fromEntries(opts.labels.map((l, i) => [l, i]));
    rawCfg.num_labels = opts.labels.length;
  } else if (opts.numLabels) {
    rawCfg.num_labels = opts.numLabels;
    delete rawCfg.id2label;
  }
  const arch = architectureFor(rawCfg.model_type);
  const config = arch.parseConfig(rawCfg);
  const model = arch.build(config, task);
  const modules = new Map(model.namedModules());
  const targets: Nf4Target[] = [];
  try {
    for (const stateKey of ckpt.names) {
      if (!STATE_SUFFIX.test(stateKey)) continue;
      const key = stateKey.replace(STATE_SUFFIX, '');
      const name = arch.mapKey(key, task);
      if (name === null || !name.endsWith('.weight')) continue;
      const path = name.slice(0, -'.weight'.length);
      const parent = modules.get(path.split('.').slice(0, -1).join('.'));
      const lin = modules.get(path);
      if (!parent || !(lin instanceof Linear)) throw new TunekitError('ERR_FORMAT', `${stateKey}: '${path}' is not a linear layer of this ${String(rawCfg.model_type)} model`);
      targets.push({ key, path, parent, child: path.split('.').pop()!, lin });
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { arch, task, model, targets };
}

/** The tensors of one quantized layer (`<key><suffix>` for each suffix the file has). */
const NF4_SUFFIXES = ['', '.absmax', '.quant_map', '.nested_absmax', '.nested_quant_map', '.quant_state.bitsandbytes__nf4', '.quant_state.bitsandbytes__fp4'];

/** Swaps the layer for an NF4Linear over the state read from the file, checking its shape. */
function installNf4(t: Nf4Target, parts: Map<string, RawTensor>): void {
  noGrad(() => {
    const q = nf4FromState(t.key, (suffix) => parts.get(suffix));
    if (q.shape[0] !== t.lin.outFeatures || q.shape[1] !== t.lin.inFeatures) {
      q.dispose();
      throw new TunekitError('ERR_SHAPE', `${t.key}: quantized shape [${q.shape}] does not fit the layer [out ${t.lin.outFeatures}, in ${t.lin.inFeatures}]`);
    }
    t.parent.replaceChild(t.child, new NF4Linear(q, t.lin.bias, t.lin.layout));
    t.lin.weight.dispose();
  });
}

/** The dense load's report without the NF4 layers' own keys (they were loaded as NF4 state). */
function nf4Report(arch: ReturnType<typeof architectureFor>, task: Task, report: LoadReport, quantized: string[]): LoadReport & { quantized: string[] } {
  const nf4Keys = (k: string) => /\.weight(\.(absmax|quant_map|nested_absmax|nested_quant_map)|\.quant_state\.bitsandbytes__(nf4|fp4))?$/.test(k) && quantized.some((p) => arch.mapKey(k.replace(/\.weight.*$/, '.weight'), task) === `${p}.weight`);
  return { ...report, unused: report.unused.filter((k) => !nf4Keys(k)), quantized };
}

/**
 * Loads a transformers + bitsandbytes 4-bit folder: layers with a quant state become NF4Linear
 * (never expanded), everything else loads dense. Eval mode, as loadPretrained. Read through
 * fs/promises, one tensor at a time.
 * @example const { model, report } = await loadNf4Pretrained('out/gpt2-nf4');
 */
export async function loadNf4Pretrained(dir: string, opts: LoadOptions = {}): Promise<{ model: PretrainedModel; report: LoadReport & { quantized: string[] } }> {
  const rawConfig = await readConfig(dir);
  const ckpt = await openCheckpoint(dir);
  let plan: ReturnType<typeof planNf4Load>;
  try {
    plan = planNf4Load(rawConfig, opts, ckpt);
    try {
      for (const t of plan.targets) {
        const parts = new Map<string, RawTensor>();
        for (const s of NF4_SUFFIXES) if (ckpt.has(t.key + s)) parts.set(s, await ckpt.readTensor(t.key + s));
        installNf4(t, parts);
      }
    } catch (e) {
      plan.model.dispose();
      throw e;
    }
  } finally {
    await ckpt.close();
  }
  const { arch, task, model, targets } = plan;
  const report = await loadWeights(model, dir, task);
  model.eval();
  return { model, report: nf4Report(arch, task, report, targets.map((t) => t.path)) };
}

/**
 * {@link loadNf4Pretrained} with blocking reads.
 * @example const { model } = loadNf4PretrainedSync('out/gpt2-nf4');
 */
export function loadNf4PretrainedSync(dir: string, opts: LoadOptions = {}): { model: PretrainedModel; report: LoadReport & { quantized: string[] } } {
  const rawConfig = readConfigSync(dir);
  const ckpt = openCheckpointSync(dir);
  let plan: ReturnType<typeof planNf4Load>;
  try {
    plan = planNf4Load(rawConfig, opts, ckpt);
    try {
      for (const t of plan.targets) {
        const parts = new Map<string, RawTensor>();
        for (const s of NF4_SUFFIXES) if (ckpt.has(t.key + s)) parts.set(s, ckpt.readTensor(t.key + s));
        installNf4(t, parts);
      }
    } catch (e) {
      plan.model.dispose();
      throw e;
    }
  } finally {
    ckpt.close();
  }
  const { arch, task, model, targets } = plan;
  const report = loadWeightsSync(model, dir, task);
  model.eval();
  return { model, report: nf4Report(arch, task, report, targets.map((t) => t.path)) };
}
