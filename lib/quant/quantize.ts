/**
 * quantizeModel: replaces a model's Linear layers by NF4Linear (bitsandbytes' load_in_4bit), in
 * place, leaving the output heads, embeddings and norms in f32 (transformers' default skip list
 * keeps the LM head and classification heads dense; embeddings and norms are not linear layers).
 *
 * @example
 * const report = quantizeModel(model, { blocksize: 64, doubleQuant: true });
 * console.log(report.bytesBefore, report.bytesAfter);
 */
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

/** Replaces every Linear not in `skip` by an NF4Linear (in place) and reports the bytes saved. */
export function quantizeModel(model: Module, opts: QuantizeModelOptions = {}): QuantizeModelReport {
  const skip = opts.skip ?? DEFAULT_SKIP;
  const bytesBefore = modelBytes(model);
  const quantized: string[] = [];
  const dense = opts.keepDense ? new Map<string, Linear>() : undefined;
  let wBefore = 0, wAfter = 0, nParams = 0;
  for (const [name, parent] of model.namedModules()) {
    for (const [child, m] of parent.children()) {
      if (!(m instanceof Linear)) continue;
      const full = name ? `${name}.${child}` : child;
      if (isSkipped(full, skip)) continue;
      // a tied weight (shared with an embedding) cannot be quantized independently
      const q = NF4Linear.fromLinear(m, opts);
      q.train(m.training);
      parent.replaceChild(child, q);
      quantized.push(full);
      wBefore += m.weight.numel * 4;
      wAfter += q.weightBytes();
      nParams += m.weight.numel;
      if (dense) dense.set(full, m);
      else m.weight.dispose(); // the bias is shared with the NF4Linear
    }
  }
  if (quantized.length === 0) throw new TunekitError('ERR_CONFIG', `quantizeModel: no linear layer to quantize (skip: ${skip.join(', ')})`);
  return { quantized, bytesBefore, bytesAfter: modelBytes(model), weightBytesBefore: wBefore, weightBytesAfter: wAfter, bytesPerParam: wAfter / nParams, dense };
}
