/**
 * Module: named parameters and submodules, with Hugging Face-style dotted names
 * ("transformer.h.0.attn.c_attn.weight") so state dicts map 1:1 onto checkpoint keys.
 */
import { Tensor } from '../tensor/tensor.js';
import { keep } from '../tensor/scope.js';
import { parseDevice, type Device } from '../tensor/device.js';
import { TunekitError } from '../errors.js';

/**
 * Depth of the `inferenceMode` calls under way. Forward passes are synchronous, so a scope that
 * is entered and left around one forward is never seen by another async task (a `fit()` running
 * beside a `generate()` only runs between the generator's steps, when the depth is back to 0).
 */
let inferenceDepth = 0;

/**
 * Runs `fn` (synchronous) with every module behaving as in eval mode (no dropout), without
 * changing any module's own mode: `generate()` runs its forward passes this way, so a model a
 * trainer set to train mode stays in train mode for the trainer, even when generation and
 * training interleave.
 * @example const logits = noGrad(() => inferenceMode(() => model.forward(inputs).logits));
 */
export function inferenceMode<T>(fn: () => T): T {
  inferenceDepth++;
  try {
    const out = fn();
    if (out instanceof Promise) throw new TunekitError('ERR_VALUE', 'inferenceMode: expected a synchronous function (the scope must not span an await)');
    return out;
  } finally {
    inferenceDepth--;
  }
}

/** Whether an `inferenceMode` scope is under way. */
export function inInferenceMode(): boolean {
  return inferenceDepth > 0;
}

export abstract class Module {
  private _training = true;

  /**
   * Train mode (dropout active): the mode set by `train()` / `eval()`, read as false inside an
   * `inferenceMode` scope. Layers test this flag, so an inference scope turns every dropout off
   * without touching the stored mode.
   */
  get training(): boolean {
    return this._training && inferenceDepth === 0;
  }

  set training(on: boolean) {
    this._training = on;
  }

  /** The mode set by train()/eval(), whatever scope is under way. */
  get trainingMode(): boolean {
    return this._training;
  }
  private readonly _params = new Map<string, Tensor | null>();
  private readonly _buffers = new Map<string, Tensor>();
  private readonly _modules = new Map<string, Module>();

  /** Registers a trainable tensor (kept out of memory scopes). Returns it. */
  protected param<T extends Tensor | null>(name: string, t: T, requiresGrad = true): T {
    if (t) {
      keep(t);
      t.requiresGrad = requiresGrad;
    }
    this._params.set(name, t);
    return t;
  }

  /** Registers a non-trainable tensor that is still part of the state (e.g. rotary tables). */
  protected buffer<T extends Tensor>(name: string, t: T): T {
    keep(t);
    this._buffers.set(name, t);
    return t;
  }

  /** Registers a child module. Returns it. */
  protected module<M extends Module>(name: string, m: M): M {
    this._modules.set(name, m);
    return m;
  }

  /** Replaces the child `name` (used by PEFT methods to wrap layers). */
  replaceChild(name: string, m: Module): void {
    if (!this._modules.has(name)) throw new TunekitError('ERR_VALUE', `no child module '${name}' to replace`);
    this._modules.set(name, m);
    // keep the JS property pointing at the new child when one of the same name exists
    const self = this as unknown as Record<string, unknown>;
    if (self[name] !== undefined && self[name] instanceof Module) self[name] = m;
  }

  /** Replaces parameter `name` with a new tensor (disposing the old one unless keepOld). */
  setParam(name: string, t: Tensor, keepOld = false): void {
    const old = this._params.get(name);
    if (old === undefined) throw new TunekitError('ERR_VALUE', `no parameter '${name}' on ${this.constructor.name}`);
    keep(t);
    t.requiresGrad = old ? old.requiresGrad : true;
    this._params.set(name, t);
    const self = this as unknown as Record<string, unknown>;
    if (self[name] === old) self[name] = t;
    if (old && !keepOld && old !== t) old.dispose();
  }

  children(): [string, Module][] {
    return [...this._modules.entries()];
  }

  /** Every submodule with its dotted path, this one first (path ''). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this._modules) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  /** Every parameter with its dotted path. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, p] of this._params) if (p) out.push([prefix ? `${prefix}.${n}` : n, p]);
    for (const [n, m] of this._modules) out.push(...m.namedParameters(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, b] of this._buffers) out.push([prefix ? `${prefix}.${n}` : n, b]);
    for (const [n, m] of this._modules) out.push(...m.namedBuffers(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Parameters that will receive gradients. */
  trainableParameters(): [string, Tensor][] {
    return this.namedParameters().filter(([, p]) => p.requiresGrad);
  }

  /** Number of elements, all or trainable only. */
  countParameters(trainableOnly = false): number {
    return this.namedParameters().reduce((s, [, p]) => s + (!trainableOnly || p.requiresGrad ? p.numel : 0), 0);
  }

  /** Sets requiresGrad on every parameter. */
  requiresGrad_(on: boolean): this {
    for (const [, p] of this.namedParameters()) p.requiresGrad = on;
    return this;
  }

  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Clears gradients of all parameters. */
  zeroGrad(): void {
    for (const [, p] of this.namedParameters()) {
      if (p.grad) {
        p.grad.dispose();
        p.grad = null;
      }
    }
  }

  /**
   * The device of the parameters (and buffers): the first one's, 'cpu' for a module without
   * tensors. Module.to() keeps them on one device.
   */
  get device(): Device {
    const first = this.namedParameters()[0]?.[1] ?? this.namedBuffers()[0]?.[1];
    return first ? first.device : 'cpu';
  }

  /**
   * Moves every parameter and buffer of this module and its children to `device` in place (as
   * torch's Module.to): each tensor not already there is copied (Tensor.to: the storage
   * transfer), swapped in under its name and the old one disposed. A tensor shared by several
   * modules (tied embeddings) is copied once and stays shared; requiresGrad and names are kept,
   * gradients are dropped. A module holding tensors besides its maps re-points them in
   * onMoved(). Returns this module.
   * @example model.to('cuda:0'); // then batches: tensor(ids, shape, 'i32').to('cuda:0')
   */
  to(device: Device | 'cuda'): this {
    const d = parseDevice(device);
    const moved = new Map<Tensor, Tensor>();
    const swap = (t: Tensor): Tensor => {
      if (t.device === d) return t;
      let n = moved.get(t);
      if (!n) {
        n = keep(t.to(d));
        moved.set(t, n);
      }
      return n;
    };
    const modules = this.namedModules().map(([, m]) => m);
    for (const m of modules) {
      for (const map of [m._params, m._buffers] as Map<string, Tensor | null>[]) {
        for (const [name, t] of map) {
          if (t) map.set(name, swap(t));
        }
      }
    }
    // then the fields that hold one of those tensors, under any name (Llama's invFreq is the
    // buffer rotary_emb.inv_freq; a tied head's weight is another module's), and what a
    // module keeps elsewhere (onMoved)
    for (const m of modules) {
      const self = m as unknown as Record<string, unknown>;
      for (const key of Object.keys(self)) {
        const v = self[key];
        if (v instanceof Tensor && moved.has(v)) self[key] = moved.get(v);
      }
      m.onMoved(swap, d);
    }
    for (const old of moved.keys()) {
      old.grad?.dispose();
      old.grad = null;
      old.dispose();
    }
    return this;
  }

  /**
   * Called by to() on every module after its parameters and buffers moved: a module that keeps
   * references to tensors besides its maps (LoRA's adapter records, NF4Linear's quantized
   * weight) points them at `swap(t)`, t's copy on `device` (made once per tensor: a tensor of a
   * map gets the copy its map holds; the originals are disposed after every module was visited).
   * Nothing by default.
   */
  protected onMoved(swap: (t: Tensor) => Tensor, device: Device): void {
    void swap;
    void device;
  }

  /** Disposes every parameter and buffer. */
  dispose(): void {
    for (const [, p] of this.namedParameters()) p.dispose();
    for (const [, b] of this.namedBuffers()) b.dispose();
  }
}

/** A list of child modules named 0, 1, 2, ... (transformers' nn.ModuleList naming). */
export class ModuleList extends Module {
  private count = 0;
  add<M extends Module>(m: M): M {
    return this.module(String(this.count++), m);
  }
}
