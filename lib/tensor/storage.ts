/**
 * JS side of a native storage buffer. Tensors and views share one Storage; it is released
 * (native dispose) when the last tensor using it is disposed. If tensors are dropped without
 * dispose(), the native handle's finalizer frees the memory when V8 collects it (last resort).
 */
import { native, type Handle } from '../native.js';
import { TunekitError } from '../errors.js';
import type { Device } from './device.js';

export type { Device };

export class Storage {
  readonly handle: Handle;
  readonly bytes: number;
  readonly device: Device = 'cpu';
  private users = 0;
  private released = false;
  private cachedView: ArrayBuffer | null = null;
  private writes = 0;

  private constructor(handle: Handle, bytes: number) {
    this.handle = handle;
    this.bytes = bytes;
  }

  /** A new native buffer of `bytes` bytes (zero-filled when `zero`) on `device`. */
  static allocate(bytes: number, zero = false, device: Device = 'cpu'): Storage {
    if (device !== 'cpu') throw new TunekitError('ERR_DEVICE', `cannot allocate on ${device}: tensors on CUDA devices are not available in this build`);
    return new Storage(native.alloc(bytes, zero), bytes);
  }

  get isReleased(): boolean {
    return this.released;
  }

  /**
   * Bumped by every in-place write through tunekit (copyFrom, assign, fill_, a GEMM `into` it,
   * the optimizer step): caches derived from the contents (the bf16 weight copies) key on it.
   * Writes through a data() view are not seen: call markWritten() after them.
   */
  get version(): number {
    return this.writes;
  }

  markWritten(): void {
    this.writes++;
  }

  /** Zero-copy ArrayBuffer over the native memory (kept alive by the buffer itself). */
  arrayBuffer(): ArrayBuffer {
    this.assertLive();
    if (!this.cachedView) this.cachedView = native.view(this.handle);
    return this.cachedView;
  }

  addUser(): void {
    this.users++;
  }

  removeUser(): void {
    if (this.released) return;
    this.users--;
    if (this.users <= 0) {
      this.released = true;
      this.cachedView = null;
      native.dispose(this.handle);
    }
  }

  assertLive(): void {
    if (this.released) throw new TunekitError('ERR_DISPOSED', 'tensor was used after dispose()');
  }
}
