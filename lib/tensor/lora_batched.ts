/**
 * Linear with a LoRA adapter per row (serving): the typed wrapper over the native gathered /
 * segmented LoRA product (native/cpu/lora_batched.h). Autograd-free: it is an inference kernel,
 * so nothing here is recorded on the tape.
 *
 *   y [M, out] = x [M, in] W^T + bias;   y[i] += scale[a] (x[i] A_a^T) B_a^T   for a = rowSlot[i] >= 0
 *
 * The adapters of one layer live in a `LoraSlotPack`: their A's stacked [R, in], their B^T's
 * stacked [R, out], and rank offsets; a slot whose adapter does not target the layer has rank 0.
 */
import { run } from './kernel_table.js';
import { TunekitError } from '../errors.js';
import { Tensor, numelOf } from './tensor.js';
import { tensor } from './creation.js';
import type { Device } from './device.js';

/** The adapters of one layer, stacked by slot. */
export interface LoraSlotPack {
  /** A matrices stacked [R, in] (null when R = 0) */
  aPack: Tensor<'f32'> | null;
  /** B^T matrices stacked [R, out] (null when R = 0) */
  btPack: Tensor<'f32'> | null;
  /** i32 [slots + 1]: slot a owns rank rows rOff[a] .. rOff[a+1] */
  rOff: Tensor<'i32'>;
  /** f32 [slots]: alpha / r (or alpha / sqrt(r)) per slot */
  scales: Tensor<'f32'>;
  slots: number;
  R: number;
}

/** One slot's adapter for packLoraSlots: A [r, in], B [out, r] (PEFT's lora_A / lora_B), or null for rank 0. */
export interface LoraSlotAdapter {
  A: Tensor;
  B: Tensor;
  scale: number;
}

/**
 * Stacks per-slot adapters into one pack (copies; the caller keeps its tensors) on `device`
 * (default: the first adapter's; the layer's when its adapters were read from files on the host).
 * @example const pack = packLoraSlots([{ A, B, scale: 2 }, null], 768, 2304); // slot 1 has rank 0
 */
export function packLoraSlots(slots: readonly (LoraSlotAdapter | null)[], inF: number, outF: number, device?: Device): LoraSlotPack {
  const rOff = new Int32Array(slots.length + 1);
  const scales = new Float32Array(slots.length);
  slots.forEach((s, a) => {
    const r = s ? s.A.shape[0]! : 0;
    if (s && (s.A.ndim !== 2 || s.A.shape[1] !== inF || s.B.ndim !== 2 || s.B.shape[0] !== outF || s.B.shape[1] !== r)) {
      throw new TunekitError('ERR_SHAPE', `packLoraSlots: slot ${a} has A [${s.A.shape}] and B [${s.B.shape}] but the layer needs A [r, ${inF}] and B [${outF}, r]`);
    }
    if (s && !Number.isFinite(s.scale)) throw new TunekitError('ERR_VALUE', `packLoraSlots: slot ${a} has scale ${s.scale}; expected a finite number`);
    rOff[a + 1] = rOff[a]! + r;
    scales[a] = s ? s.scale : 1;
  });
  const R = rOff[slots.length]!;
  // the pack lives beside the adapters (a GPU's memory when they were moved there)
  device ??= slots.find((s) => s)?.A.device ?? 'cpu';
  let aPack: Tensor<'f32'> | null = null, btPack: Tensor<'f32'> | null = null;
  if (R > 0) {
    const aData = new Float32Array(R * inF), btData = new Float32Array(R * outF);
    slots.forEach((s, a) => {
      if (!s) return;
      const r = s.A.shape[0]!, r0 = rOff[a]!;
      aData.set(s.A.toTypedArray() as Float32Array, r0 * inF);
      const b = s.B.toTypedArray() as Float32Array; // [out, r] -> rows of B^T [r, out]
      for (let k = 0; k < r; k++) for (let o = 0; o < outF; o++) btData[(r0 + k) * outF + o] = b[o * r + k]!;
    });
    aPack = tensor(aData, [R, inF], 'f32', device);
    btPack = tensor(btData, [R, outF], 'f32', device);
  }
  return { aPack, btPack, rOff: tensor(rOff, [slots.length + 1], 'i32', device), scales: tensor(scales, [slots.length], 'f32', device), slots: slots.length, R };
}

/** Frees a pack's tensors. */
export function disposeLoraSlotPack(p: LoraSlotPack): void {
  p.aPack?.dispose();
  p.btPack?.dispose();
  p.rOff.dispose();
  p.scales.dispose();
}

/**
 * y = x W^T + bias plus each row's adapter from `pack` (rowSlot: i32 [rows of x], -1 = none).
 * x [..., in]; W [out, in], or [in, out] when wInOut (GPT-2 Conv1D). `reference` runs the plain
 * double-precision loops (tests).
 * @example const y = loraBatchedLinear(x, layer.weight, layer.bias, pack, rowSlot, { wInOut: true });
 */
export function loraBatchedLinear(
  x: Tensor, w: Tensor, bias: Tensor | null, pack: LoraSlotPack, rowSlot: Tensor<'i32'>,
  opts: { wInOut?: boolean; reference?: boolean } = {},
): Tensor<'f32'> {
  const wInOut = opts.wInOut ?? false;
  for (const [t, what] of [[x, 'input'], [w, 'weight'], [bias, 'bias']] as const) {
    if (t && t.dtype !== 'f32') throw new TunekitError('ERR_DTYPE', `loraBatchedLinear: expected the ${what} to be f32 but received ${t.dtype}`);
  }
  if (rowSlot.dtype !== 'i32') throw new TunekitError('ERR_DTYPE', `loraBatchedLinear: expected rowSlot to be i32 but received ${rowSlot.dtype}`);
  if (w.ndim !== 2) throw new TunekitError('ERR_SHAPE', `loraBatchedLinear: expected a 2-D weight but received [${w.shape}]`);
  const inF = wInOut ? w.shape[0]! : w.shape[1]!;
  const outF = wInOut ? w.shape[1]! : w.shape[0]!;
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== inF) throw new TunekitError('ERR_SHAPE', `loraBatchedLinear: input [${x.shape}] does not end in the weight's ${inF} input features`);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== outF)) throw new TunekitError('ERR_SHAPE', `loraBatchedLinear: bias [${bias.shape}] but ${outF} outputs`);
  const lead = x.shape.slice(0, -1);
  const M = numelOf(lead);
  if (rowSlot.numel !== M) throw new TunekitError('ERR_SHAPE', `loraBatchedLinear: ${rowSlot.numel} row slots for ${M} rows of input [${x.shape}]`);
  if (pack.aPack && pack.aPack.shape[1] !== inF) throw new TunekitError('ERR_SHAPE', `loraBatchedLinear: the pack's A rows have ${pack.aPack.shape[1]} features but the layer ${inF}`);
  if (pack.btPack && pack.btPack.shape[1] !== outF) throw new TunekitError('ERR_SHAPE', `loraBatchedLinear: the pack's B^T rows have ${pack.btPack.shape[1]} outputs but the layer ${outF}`);
  const xc = x.contiguousRaw(), wc = w.contiguousRaw(), bc = bias ? bias.contiguousRaw() : null, rc = rowSlot.contiguousRaw();
  const y = Tensor.empty([...lead, outF], 'f32', false, x.device);
  try {
    run('loraBatchedLinear', { x: xc, w: wc, bias: bc, rowSlot: rc, aPack: pack.aPack, btPack: pack.btPack, rOff: pack.rOff, scales: pack.scales, y,
      M, inF, outF, slots: pack.slots, R: pack.R, wInOut, reference: opts.reference ?? false });
  } catch (e) {
    y.dispose();
    throw e;
  } finally {
    xc.dispose(); wc.dispose(); bc?.dispose(); rc.dispose();
  }
  return y;
}
