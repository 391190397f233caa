/**
 * What every LoRA-wrapped layer (linear or embedding) shares: its named adapters, which one is
 * active, the disabled switch, and merging an adapter into the base weight and back. A subclass
 * says how one adapter's delta lands in its weight layout (`applyDelta`).
 */
import { Module } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';
import { TunekitError } from '../../errors.js';

export interface LoraAdapter {
  r: number;
  alpha: number;
  scale: number;
  dropout: number;
  A: Tensor;
  B: Tensor;
}

export abstract class LoraAdaptedModule extends Module {
  readonly adapters = new Map<string, LoraAdapter>();
  active: string | null = null;
  disabled = false;
  /** adapters currently merged into the base weight */
  readonly merged = new Set<string>();

  /** base weight += sign * scale * delta of `ad`, in the weight's own layout */
  protected abstract applyDelta(ad: LoraAdapter, sign: 1 | -1): void;

  /** The adapter the forward pass adds, if any (active, enabled, not merged). */
  protected liveAdapter(): LoraAdapter | undefined {
    return this.active && !this.disabled && !this.merged.has(this.active) ? this.adapters.get(this.active) : undefined;
  }

  /**
   * What a forward pass applies: the live adapter and its dropout probability (PEFT's
   * lora_dropout, only while training), or null when the base layer alone runs. Disabling
   * adapters that are merged into the weights is refused: the base weights are not the base.
   */
  protected forwardAdapter(): { ad: LoraAdapter; p: number } | null {
    const ad = this.liveAdapter();
    if (ad) return { ad, p: this.training ? ad.dropout : 0 };
    if (this.disabled && this.merged.size) throw new TunekitError('ERR_STATE', 'adapters are merged into the weights: unmerge before disabling them');
    return null;
  }

  /** The adapter records hold A and B beside the parameter maps: they follow Module.to(). */
  protected override onMoved(swap: (t: Tensor) => Tensor): void {
    for (const ad of this.adapters.values()) {
      ad.A = swap(ad.A);
      ad.B = swap(ad.B);
    }
  }

  /** Registers a new adapter; the first one becomes active. */
  protected registerAdapter(name: string, ad: LoraAdapter): LoraAdapter {
    this.adapters.set(name, ad);
    if (this.active === null) this.active = name;
    return ad;
  }

  protected addDelta(name: string, sign: 1 | -1): void {
    const ad = this.adapters.get(name);
    if (!ad) throw new TunekitError('ERR_VALUE', `no adapter '${name}'`);
    this.applyDelta(ad, sign);
  }

  merge(name = this.active!): void {
    if (this.merged.has(name)) return;
    this.addDelta(name, 1);
    this.merged.add(name);
  }

  unmerge(name = this.active!): void {
    if (!this.merged.has(name)) return;
    this.addDelta(name, -1);
    this.merged.delete(name);
  }
}
