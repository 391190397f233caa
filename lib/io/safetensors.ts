/**
 * safetensors reading and writing, in plain TypeScript on node:fs (no tensor dependency): the
 * types, and the readers (safetensors_read.ts), writers (safetensors_write.ts) and value decoding
 * (safetensors_values.ts) behind them.
 *
 * File layout (huggingface/safetensors): u64 little-endian N, N bytes of UTF-8 JSON header
 * (padded with spaces so that 8 + N is a multiple of 8), then the raw tensor bytes, C order,
 * little-endian. Header: `{"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__"?: {str: str}}`, offsets relative to the start of the data.
 *
 * Every operation has two forms: the plain name goes through fs/promises (`await
 * openCheckpoint(dir)`, `await reader.readInto(name, target)`, `await writeSafetensors(...)`),
 * so the event loop runs while bytes move; the `...Sync` form blocks (scripts, synchronous
 * callers). Readers never load a whole file: opening parses the header only and each read
 * fetches one tensor with positioned reads. Every dtype of the format is read (U16, U32, U64,
 * C64, the FP8, F6 and F4 variants too) as raw bytes; which of them tunekit can compute with is
 * the tensor layer's business (lib/models/weights.ts says so when it converts). Writers are
 * atomic (temporary file, fsync, rename): a crash never leaves a half-written checkpoint under
 * the final name.
 */
import type { SafetensorsDtype } from './safetensors_header.js';

export { DTYPE_BITS, type SafetensorsDtype } from './safetensors_header.js';
export { openSafetensors, openSafetensorsSync, openCheckpoint, openCheckpointSync } from './safetensors_read.js';
export { writeSafetensors, writeSafetensorsSync, writeShardedSafetensors, writeShardedSafetensorsSync } from './safetensors_write.js';
export { decodeValues, DTYPE_SIZE } from './safetensors_values.js';

/** One tensor as raw bytes: what the writers take and `readTensor` returns. */
export interface RawTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** C-order little-endian bytes; length = product(shape) * DTYPE_BITS[dtype] / 8. */
  bytes: Uint8Array;
}

/** A header entry: where a tensor lives. */
export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) relative to the start of the data section, as in the file. */
  dataOffsets: [number, number];
  /** The file that holds the tensor (differs between shards of a checkpoint). */
  file: string;
}

/** What an open file or checkpoint knows from its header alone (both reader forms). */
export interface SafetensorsHeaderView {
  /** Path of the file (or the index JSON of a sharded checkpoint). */
  readonly path: string;
  /** Tensor names, in data-offset order for one file, in weight_map order for a checkpoint. */
  readonly names: readonly string[];
  /** Header entries by name. */
  readonly header: ReadonlyMap<string, TensorInfo>;
  /** `__metadata__` (for a checkpoint: the first shard's). Empty object when absent. */
  readonly metadata: Readonly<Record<string, string>>;
  /** True if a tensor of that name exists. */
  has(name: string): boolean;
  /** Header entry of a tensor; throws ERR_NOT_FOUND for an unknown name. */
  info(name: string): TensorInfo;
}

/** An open safetensors file or sharded checkpoint whose reads go through fs/promises. */
export interface SafetensorsReader extends SafetensorsHeaderView {
  /** Reads one tensor's bytes from disk (only that tensor). */
  read(name: string): Promise<Uint8Array>;
  /**
   * Reads one tensor's bytes into `target` (exactly its byte length), e.g. straight into native
   * memory; `target` must stay alive until the promise settles.
   */
  readInto(name: string, target: Uint8Array): Promise<void>;
  /** Reads one tensor with its dtype and shape. */
  readTensor(name: string): Promise<RawTensor>;
  /** Releases file handles. Reads started later reject with ERR_IO. */
  close(): Promise<void>;
}

/** An open safetensors file or sharded checkpoint with blocking reads. */
export interface SafetensorsReaderSync extends SafetensorsHeaderView {
  /** Reads one tensor's bytes from disk (only that tensor). */
  read(name: string): Uint8Array;
  /** Reads one tensor's bytes into `target` (exactly its byte length), e.g. straight into native memory. */
  readInto(name: string, target: Uint8Array): void;
  /** Reads one tensor with its dtype and shape. */
  readTensor(name: string): RawTensor;
  /** Releases file descriptors. Further reads throw ERR_IO. */
  close(): void;
}

/** Options of {@link openCheckpoint}. */
export interface OpenCheckpointOptions {
  /** File stem to look for: `<stem>.safetensors` or `<stem>.safetensors.index.json`. Default `model`. */
  stem?: string;
}

/** Tensors to write: an array of RawTensor or a Map from name to the rest. */
export type TensorsToWrite = readonly RawTensor[] | ReadonlyMap<string, Omit<RawTensor, 'name'>>;

/** Options of {@link writeShardedSafetensors}. */
export interface ShardedWriteOptions {
  /** Largest shard in bytes of tensor data (a single bigger tensor gets a shard of its own). Default 5 GB. */
  maxShardSize?: number;
  /** File stem. Default `model` (model.safetensors, model-00001-of-00002.safetensors, ...). */
  stem?: string;
  /** `__metadata__` written into every shard. */
  metadata?: Record<string, string>;
}
