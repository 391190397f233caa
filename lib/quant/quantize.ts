/**
 * quantizeModel: replaces a model's Linear layers by NF4Linear (bitsandbytes' load_in_4bit), in
 * place, leaving the output heads, embeddings and norms in f32 (transformers' default skip list
 * keeps the LM head and classification heads dense; embeddings and norms are not linear layers).
 *
 * @example
 * const report = await quantizeModel(model, { blocksize: 64, doubleQuant: true });
 * console.log(report.bytesBefore, report.bytesAfter);
 */
import { yieldToEventLoop as yieldToLoop } from '../event_loop.js';
import type { Module } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import { TunekitError } from '../errors.js';
import { NF4Linear } from './nf4_linear.js';
import type { QuantizeOptions } from '../tensor/nf4.js';

/** transformers keeps these dense (llm_int8_skip_modules defaults to the output head). */
export const DEFAULT_SKIP = ['lm_head', 'score', 'classifier', 'qa_outputs', 'wte', 'wpe', 'embed_tokens', 'word_embeddings'];

export interface QuantizeModelOptions extends QuantizeOptions {
  /** module names (exact path or last component(s)) left dense */
  skip?: string[];
  /** keep the dense weights of replaced layers (for error reports); default false (disposed) */
  keepDense?: boolean;
}

export interface QuantizeModelReport {
  /** module paths now NF4 */
  quantized: string[];
  /** parameter + buffer bytes of the whole model before and after */
  bytesBefore: number;
  bytesAfter: number;
  /** bytes of the replaced weights before (f32) and after (codes + absmax state) */
  weightBytesBefore: number;
  weightBytesAfter: number;
  /** weightBytesAfter / quantized parameter count */
  bytesPerParam: number;
  /** path -> dense f32 weight in the source layout, when keepDense */
  dense?: Map<string, Linear>;
}

function modelBytes(m: Module): number {
  let n = 0;
  const seen = new Set<unknown>();
  for (const [, t] of [...m.namedParameters(), ...m.namedBuffers()]) {
    if (seen.has(t)) continue; // tied weights count once
    seen.add(t);
    n += t.numel * bytesOf(t.dtype);
  }
  // double-quantized absmax state lives in NF4Linear.qweight, outside params/buffers
  for (const [, mod] of m.namedModules()) {
    if (mod instanceof NF4Linear) n += mod.weightBytes() - mod.qweight.packed.numel;
  }
  return n;
}

function bytesOf(dtype: string): number {
  return dtype === 'f32' || dtype === 'i32' ? 4 : dtype === 'f64' || dtype === 'i64' ? 8 : dtype === 'u8' ? 1 : 2;
}

export function isSkipped(path: string, skip: readonly string[]): boolean {
  return skip.some((s) => path === s || path.endsWith(`.${s}`));
}

/** One Linear to replace: its parent module, its name there and its full path. */
interface QuantizeTarget {
  parent: Module;
  child: string;
  path: string;
  linear: Linear;
}

/** The Linear layers not in `skip`, found before any is replaced. */
function quantizeTargets(model: Module, skip: readonly string[]): QuantizeTarget[] {
  const out: QuantizeTarget[] = [];
  for (const [name, parent] of model.namedModules()) {
    for (const [child, m] of parent.children()) {
      if (!(m instanceof Linear)) continue;
      const path = name ? `${name}.${child}` : child;
      if (!isSkipped(path, skip)) out.push({ parent, child, path, linear: m });
    }
  }
  if (out.length === 0) throw new TunekitError('ERR_CONFIG', `quantizeModel: no linear layer to quantize (skip: ${skip.join(', ')})`);
  return out;
}

/** Running totals of a quantization, turned into the report at the end. */
class QuantizeRun {
  readonly quantized: string[] = [];
  readonly dense: Map<string, Linear> | undefined;
  private readonly bytesBefore: number;
  private wBefore = 0;
  private wAfter = 0;
  private nParams = 0;

  constructor(private readonly model: Module, private readonly opts: QuantizeModelOptions) {
    this.bytesBefore = modelBytes(model);
    this.dense = opts.keepDense ? new Map<string, Linear>() : undefined;
  }

  /** Quantizes one layer: blockwise NF4 of its weight (the work of one step), then swaps it in. */
  replace({ parent, child, path, linear: m }: QuantizeTarget): void {
    const q = NF4Linear.fromLinear(m, this.opts);
    q.train(m.training);
    parent.replaceChild(child, q);
    this.quantized.push(path);
    this.wBefore += m.weight.numel * 4;
    this.wAfter += q.weightBytes();
    this.nParams += m.weight.numel;
    if (this.dense) this.dense.set(path, m);
    else m.weight.dispose(); // the bias is shared with the NF4Linear
  }

  report(): QuantizeModelReport {
    return { quantized: this.quantized, bytesBefore: this.bytesBefore, bytesAfter: modelBytes(this.model), weightBytesBefore: this.wBefore, weightBytesAfter: this.wAfter, bytesPerParam: this.wAfter / this.nParams, dense: this.dense };
  }
}

/**
 * Replaces every Linear not in `skip` by an NF4Linear (in place) and reports the bytes saved.
 * There is no I/O: this is long compute (a 7B model has 224 layers to quantize), so the event
 * loop runs between layers. The model is half quantized until the promise settles: do not run it
 * meanwhile.
 * @example const { bytesAfter } = await quantizeModel(model, { blocksize: 64, doubleQuant: true });
 */
export async function quantizeModel(model: Module, opts: QuantizeModelOptions = {}): Promise<QuantizeModelReport> {
  const run = new QuantizeRun(model, opts);
  for (const target of quantizeTargets(model, opts.skip ?? DEFAULT_SKIP)) {
    run.replace(target);
    await yieldToLoop();
  }
  return run.report();
}

/**
 * {@link quantizeModel} in one blocking call.
 * @example const { quantized } = quantizeModelSync(model);
 */
export function quantizeModelSync(model: Module, opts: QuantizeModelOptions = {}): QuantizeModelReport {
  const run = new QuantizeRun(model, opts);
  for (const target of quantizeTargets(model, opts.skip ?? DEFAULT_SKIP)) run.replace(target);
  return run.report();
}
