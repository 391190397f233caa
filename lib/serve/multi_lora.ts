/**
 * The serving side of LoRA: a linear layer that applies a different adapter to each row of the
 * batch in one native call (the gathered / segmented LoRA product of Punica and S-LoRA), and the
 * per-forward assignment of rows to adapter slots that every such layer reads.
 *
 * The scheduler sets the assignment (one slot per sequence, -1 for the base model) before a
 * forward of [B, T] tokens; each MultiLoraLinear expands it to the B*T rows it sees. Outside an
 * assignment (a forward the scheduler did not start) the layer is its plain base layer.
 */
import { Module } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import type { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import type { Device } from '../tensor/device.js';
import { TunekitError } from '../errors.js';
import { loraBatchedLinear, disposeLoraSlotPack, type LoraSlotPack } from '../tensor/lora_batched.js';

/** Which adapter slot each row of the forward under way uses. */
export class RowSlots {
  private rows: Tensor<'i32'> | null = null;

  /**
   * Assigns slots for a forward of `perSequence.length` sequences of `tokens` tokens each (the
   * rows of [B, T] in order: sequence b owns rows b*T .. b*T+T-1), on `device` (the model's).
   * Call end() after the forward.
   * @example rowSlots.begin(Int32Array.of(0, -1, 2), 1); model.forward(...); rowSlots.end();
   */
  begin(perSequence: Int32Array, tokens: number, device: Device = 'cpu'): void {
    this.end();
    const rows = new Int32Array(perSequence.length * tokens);
    for (let b = 0; b < perSequence.length; b++) rows.fill(perSequence[b]!, b * tokens, (b + 1) * tokens);
    this.rows = tensor(rows, [rows.length], 'i32', device);
  }

  end(): void {
    this.rows?.dispose();
    this.rows = null;
  }

  /** The slots of the current forward's rows, or null outside one. */
  current(): Tensor<'i32'> | null {
    return this.rows;
  }
}

/**
 * A dense Linear plus every loaded adapter's A/B for it (stacked by slot, `LoraSlotPack`); each
 * row of the input gets the adapter its slot names.
 */
export class MultiLoraLinear extends Module {
  readonly base_layer: Linear;
  private pack: LoraSlotPack | null = null;

  constructor(base: Linear, private readonly rowSlots: RowSlots) {
    super();
    this.base_layer = this.module('base_layer', base);
  }

  get inFeatures(): number {
    return this.base_layer.inFeatures;
  }
  get outFeatures(): number {
    return this.base_layer.outFeatures;
  }

  /** Replaces the stacked adapters (the old pack is freed). */
  setPack(pack: LoraSlotPack | null): void {
    if (this.pack) disposeLoraSlotPack(this.pack);
    this.pack = pack;
  }

  /** Rank of each slot on this layer (0 where the slot's adapter does not target it). */
  ranks(): number[] {
    if (!this.pack) return [];
    const off = this.pack.rOff.toTypedArray() as Int32Array;
    return Array.from({ length: this.pack.slots }, (_, a) => off[a + 1]! - off[a]!);
  }

  forward(x: Tensor): Tensor<'f32'> {
    const rows = this.rowSlots.current();
    if (!rows || !this.pack || this.pack.R === 0) return this.base_layer.forward(x);
    const M = x.numel / this.inFeatures;
    if (M !== rows.numel) {
      throw new TunekitError('ERR_STATE', `MultiLoraLinear: the forward under way assigned adapters to ${rows.numel} rows but this layer received [${x.shape}] (${M} rows)`);
    }
    return loraBatchedLinear(x, this.base_layer.weight, this.base_layer.bias, this.pack, rows, { wInOut: this.base_layer.layout === 'in_out' });
  }

  override dispose(): void {
    this.setPack(null);
    super.dispose();
  }
}
