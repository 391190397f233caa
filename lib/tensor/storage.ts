/**
 * JS side of a native storage buffer. Tensors and views share one Storage; it is released
 * (native dispose) when the last tensor using it is disposed. If tensors are dropped without
 * dispose(), the native handle's finalizer frees the memory when V8 collects it (last resort).
 */
import { native, type Handle } from '../native.js';
import { TunekitError } from '../errors.js';
import { deviceOrdinal, type Device } from './device.js';
import { LOOPBACK_DEVICE } from './loopback.js';

export type { Device };

/** The kernelSchema id of alloc's (bytes, zero) (made on first use). */
let HOST_ALLOC: number | undefined;

export class Storage {
  readonly handle: Handle;
  readonly bytes: number;
  readonly device: Device;
  private users = 0;
  private released = false;
  private cachedView: ArrayBuffer | null = null;
  private writes = 0;

  private constructor(handle: Handle, bytes: number, device: Device) {
    this.handle = handle;
    this.bytes = bytes;
    this.device = device;
  }

  /**
   * A new native buffer of `bytes` bytes (zero-filled when `zero`) on `device`: host memory, or
   * the CUDA caching allocator's (ERR_DEVICE naming CUDA's reason where no device is usable).
   * The loopback device (TUNEKIT_LOOPBACK_DEVICE=1) allocates host memory labelled `device`.
   */
  static allocate(bytes: number, zero = false, device: Device = 'cpu'): Storage {
    if (LOOPBACK_DEVICE && device !== 'cpu' && device !== 'cuda:0') {
      throw new TunekitError('ERR_DEVICE', `${device}: the loopback device (TUNEKIT_LOOPBACK_DEVICE=1) is cuda:0 only`);
    }
    // host memory by position (kernelSchema: no property reads, a small op's allocation is most of its cost)
    return new Storage(device === 'cpu' || LOOPBACK_DEVICE ? native.alloc((HOST_ALLOC ??= native.kernelSchema(['bytes', 'zero'])), bytes, zero) : native.alloc({ bytes, zero, device: deviceOrdinal(device) }), bytes, device);
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

  /** Zero-copy ArrayBuffer over the native memory (kept alive by the buffer itself); host memory only. */
  arrayBuffer(): ArrayBuffer {
    this.assertLive();
    if (this.device !== 'cpu') {
      throw new TunekitError('ERR_DEVICE', `a tensor on ${this.device} has no host view: copy it with toTypedArray() or .to('cpu')`);
    }
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
