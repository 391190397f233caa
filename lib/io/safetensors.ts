/**
 * safetensors reading and writing, in plain TypeScript on node:fs (no tensor dependency).
 *
 * File layout (huggingface/safetensors): u64 little-endian N, N bytes of UTF-8 JSON header
 * (padded with spaces so that 8 + N is a multiple of 8), then the raw tensor bytes, C order,
 * little-endian. Header: `{"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__"?: {str: str}}`, offsets relative to the start of the data.
 *
 * Readers here never load a whole file: `open*` parses the header only and `read(name)` reads
 * one tensor with positioned reads, so checkpoints larger than memory-friendly buffers work.
 * Only regular files are read (a FIFO, a directory or a device is refused at once, never read),
 * and the header length is checked against the file size and a 100 MB limit before anything is
 * allocated. Headers are judged as the reference (the Rust/Python `safetensors` library) judges
 * them: see safetensors_header.ts. Every dtype of the format is read (U16, U32, U64, C64, the FP8,
 * F6 and F4 variants too) as raw bytes; which of them tunekit can compute with is the tensor
 * layer's business (lib/models/weights.ts says so when it converts).
 * Writers are atomic (temporary file, fsync, rename): a crash never leaves a half-written
 * checkpoint under the final name.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as nodePath from 'node:path';
import { randomBytes } from 'node:crypto';
import { TunekitError } from '../errors.js';
import { DTYPE_BITS, HeaderError, isSafetensorsDtype, parseSafetensorsHeader, type SafetensorsDtype } from './safetensors_header.js';

export { DTYPE_BITS, type SafetensorsDtype };

/**
 * Bytes per element of each dtype: bits / 8, so fractional for the sub-byte dtypes (F4 0.5,
 * F6_* 0.75), whose tensors must hold a whole number of bytes.
 */
export const DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = Object.freeze(
  Object.fromEntries(Object.entries(DTYPE_BITS).map(([k, bits]) => [k, bits / 8])) as Record<SafetensorsDtype, number>,
);

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

/** An open safetensors file or sharded checkpoint. */
export interface SafetensorsReader {
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
  /** Reads one tensor's bytes from disk (only that tensor). */
  read(name: string): Uint8Array;
  /** Reads one tensor's bytes into `target` (exactly its byte length), e.g. straight into native memory. */
  readInto(name: string, target: Uint8Array): void;
  /** Reads one tensor with its dtype and shape. */
  readTensor(name: string): RawTensor;
  /** Releases file descriptors. Further reads throw ERR_IO. */
  close(): void;
}

/** Larger headers are refused as absurd (the reference implementation uses the same bound). */
const MAX_HEADER_BYTES = 100_000_000;
/** Largest `model.safetensors.index.json` read (real ones are well under 1 MB). */
const MAX_INDEX_BYTES = 100_000_000;
/** Node's fs calls move at most 2 GiB - 1 at once; larger tensors are read in pieces. */
const IO_CHUNK = 1 << 30;

const DTYPES = Object.keys(DTYPE_BITS) as SafetensorsDtype[];
const isDtype = isSafetensorsDtype;

/** A file whose content the reference would refuse (every such verdict is ERR_FORMAT). */
function formatError(file: string, message: string): TunekitError {
  return new TunekitError('ERR_FORMAT', `${file}: ${message}`);
}

function ioError(file: string, action: string, err: unknown): TunekitError {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_IO';
  return new TunekitError(code, `${file}: cannot ${action}: ${e?.message ?? String(err)}`);
}

function shapeProduct(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes of `shape` of `dtype`, or null when the bits do not fill whole bytes (sub-byte dtypes). */
function byteLength(shape: readonly number[], dtype: SafetensorsDtype): number | null {
  const bits = shapeProduct(shape) * DTYPE_BITS[dtype];
  return bits % 8 === 0 ? bits / 8 : null;
}

/** What a non-regular file is, for messages. */
function fileKind(stat: fs.Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO (named pipe)';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Opens `file` for reading only if it is a regular file. O_NONBLOCK makes the open of a FIFO
 * return at once instead of waiting for a writer; fstat on the descriptor (not a stat of the
 * path) then refuses anything but a regular file, so nothing is ever read from a pipe or device.
 */
function openRegularFile(file: string, what: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (err) {
    throw ioError(file, `open ${what}`, err);
  }
  let stat: fs.Stats;
  try {
    stat = fs.fstatSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    throw ioError(file, `stat ${what}`, err);
  }
  if (!stat.isFile()) {
    fs.closeSync(fd);
    throw new TunekitError('ERR_IO', `${file}: expected a regular file (${what}) but it is ${fileKind(stat)}; only regular files are read`);
  }
  return { fd, size: stat.size };
}

function isDim(d: unknown): d is number {
  return typeof d === 'number' && Number.isSafeInteger(d) && d >= 0;
}

/** Reads exactly `length` bytes at `position` into `target`, or throws (truncated file). */
function readExactly(fd: number, file: string, target: Uint8Array, position: number, what: string): void {
  let done = 0;
  while (done < target.length) {
    const want = Math.min(IO_CHUNK, target.length - done);
    let got: number;
    try {
      got = fs.readSync(fd, target, done, want, position + done);
    } catch (err) {
      throw ioError(file, `read ${what}`, err);
    }
    if (got === 0) {
      throw formatError(file, `file is truncated: expected ${target.length} bytes of ${what} at byte ${position}, got ${done}`);
    }
    done += got;
  }
}

function writeFully(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    const n = Math.min(IO_CHUNK, bytes.length - done);
    done += fs.writeSync(fd, bytes, done, n);
  }
}

class FileReader implements SafetensorsReader {
  readonly names: readonly string[];
  readonly header: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  private fd: number | null;
  /** Absolute byte position of the data section. */
  private readonly dataStart: number;

  constructor(readonly path: string) {
    const { fd, size } = openRegularFile(path, 'safetensors file');
    try {
      if (size < 8) {
        throw formatError(path, `file is truncated: ${size} bytes, but a safetensors file starts with an 8-byte header length`);
      }
      const lenBytes = new Uint8Array(8);
      readExactly(fd, path, lenBytes, 0, 'header length');
      const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        throw formatError(path, `header length ${n} is absurd (limit ${MAX_HEADER_BYTES} bytes); not a safetensors file?`);
      }
      const headerLength = Number(n);
      if (8 + headerLength > size) {
        throw formatError(path, `header length ${headerLength} runs past the end of the file (${size} bytes); the file is truncated or not safetensors`);
      }
      const headerBytes = new Uint8Array(headerLength);
      readExactly(fd, path, headerBytes, 8, 'header');
      let json: string;
      try {
        // ignoreBOM keeps a leading BOM in the text, where the parser refuses it as the reference does.
        json = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
      } catch {
        throw formatError(path, 'header is not valid UTF-8');
      }
      this.dataStart = 8 + headerLength;
      let parsed: ReturnType<typeof parseSafetensorsHeader>;
      try {
        parsed = parseSafetensorsHeader(json, size - this.dataStart);
      } catch (err) {
        if (err instanceof HeaderError) throw formatError(path, err.message);
        throw err;
      }
      const header = new Map<string, TensorInfo>();
      for (const t of parsed.tensors) {
        // Offsets are at most the file size and dimensions at most 2^53 - 1 here (checked by the parser).
        header.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape.map(Number), dataOffsets: [Number(t.begin), Number(t.end)], file: path });
      }
      this.header = header;
      this.names = parsed.tensors.map((t) => t.name);
      this.metadata = metadataObject(parsed.metadata ?? []);
      this.fd = fd;
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  has(name: string): boolean {
    return this.header.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.header.get(name);
    if (!t) {
      throw new TunekitError('ERR_NOT_FOUND', `${this.path}: no tensor named "${name}" (the file has ${this.names.length} tensors${this.names.length ? `, e.g. "${this.names[0]}"` : ''})`);
    }
    return t;
  }

  read(name: string): Uint8Array {
    const t = this.info(name);
    if (this.fd === null) throw new TunekitError('ERR_IO', `${this.path}: read("${name}") after close()`);
    const out = new Uint8Array(t.dataOffsets[1] - t.dataOffsets[0]);
    readExactly(this.fd, this.path, out, this.dataStart + t.dataOffsets[0], `tensor "${name}"`);
    return out;
  }

  readTensor(name: string): RawTensor {
    const t = this.info(name);
    return { name, dtype: t.dtype, shape: [...t.shape], bytes: this.read(name) };
  }

  readInto(name: string, target: Uint8Array): void {
    const t = this.info(name);
    if (this.fd === null) throw new TunekitError('ERR_IO', `${this.path}: readInto("${name}") after close()`);
    const n = t.dataOffsets[1] - t.dataOffsets[0];
    if (target.length !== n) throw new TunekitError('ERR_SHAPE', `${this.path}: tensor "${name}" has ${n} bytes but the target holds ${target.length}`);
    readExactly(this.fd, this.path, target, this.dataStart + t.dataOffsets[0], `tensor "${name}"`);
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}

/**
 * Opens one safetensors file: parses and validates its header; tensors are read on demand.
 *
 * @example
 * const f = openSafetensors('model.safetensors');
 * const wte = f.readTensor('transformer.wte.weight'); // { dtype: 'F32', shape: [50257, 768], bytes }
 * f.close();
 */
export function openSafetensors(file: string): SafetensorsReader {
  return new FileReader(file);
}

/** A reader over several shards, presenting their union. */
class ShardedReader implements SafetensorsReader {
  readonly names: readonly string[];
  readonly header: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  private readonly owner = new Map<string, FileReader>();
  private readonly shards: FileReader[];

  constructor(readonly path: string, weightMap: Record<string, string>) {
    const dir = nodePath.dirname(path);
    const shardByFile = new Map<string, FileReader>();
    const header = new Map<string, TensorInfo>();
    try {
      for (const [name, shardFile] of Object.entries(weightMap)) {
        if (typeof shardFile !== 'string' || shardFile.includes('..') || pathIsAbsolute(shardFile)) {
          throw formatError(path, `weight_map["${name}"] must be a file name inside the checkpoint folder but is ${JSON.stringify(shardFile)}`);
        }
        let shard = shardByFile.get(shardFile);
        if (!shard) {
          shard = new FileReader(nodePath.join(dir, shardFile));
          shardByFile.set(shardFile, shard);
        }
        const info = shard.header.get(name);
        if (!info) {
          throw formatError(path, `weight_map says tensor "${name}" is in ${shardFile}, but that shard has no such tensor`);
        }
        header.set(name, info);
        this.owner.set(name, shard);
      }
    } catch (err) {
      for (const s of shardByFile.values()) s.close();
      throw err;
    }
    this.shards = [...shardByFile.values()];
    this.header = header;
    this.names = Object.keys(weightMap);
    this.metadata = this.shards[0]?.metadata ?? {};
  }

  has(name: string): boolean {
    return this.header.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.header.get(name);
    if (!t) {
      throw new TunekitError('ERR_NOT_FOUND', `${this.path}: no tensor named "${name}" in the checkpoint's weight_map (${this.names.length} tensors)`);
    }
    return t;
  }

  read(name: string): Uint8Array {
    this.info(name);
    return this.owner.get(name)!.read(name);
  }

  readTensor(name: string): RawTensor {
    this.info(name);
    return this.owner.get(name)!.readTensor(name);
  }

  readInto(name: string, target: Uint8Array): void {
    this.info(name);
    this.owner.get(name)!.readInto(name, target);
  }

  close(): void {
    for (const s of this.shards) s.close();
  }
}

function pathIsAbsolute(p: string): boolean {
  return path.isAbsolute(p);
}

/**
 * Metadata pairs as a plain object. Keys are defined, not assigned, so that a key such as
 * "__proto__" is kept as data instead of changing the object's prototype.
 */
function metadataObject(pairs: ReadonlyArray<[string, string]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of pairs) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

/** Options of {@link openCheckpoint}. */
export interface OpenCheckpointOptions {
  /** File stem to look for: `<stem>.safetensors` or `<stem>.safetensors.index.json`. Default `model`. */
  stem?: string;
}

/**
 * Opens the weights of a Hugging Face checkpoint folder: `model.safetensors`, or the shards
 * listed in `model.safetensors.index.json` (weight_map), behind one reader. A path to a
 * `.safetensors` file or to an index JSON is accepted too.
 *
 * @example
 * const ckpt = openCheckpoint('models/llama-tiny');   // sharded or not
 * for (const name of ckpt.names) console.log(name, ckpt.info(name).shape);
 * ckpt.close();
 */
export function openCheckpoint(dirOrFile: string, options: OpenCheckpointOptions = {}): SafetensorsReader {
  const stem = options.stem ?? 'model';
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dirOrFile);
  } catch (err) {
    throw ioError(dirOrFile, 'open checkpoint', err);
  }
  if (stat.isFile()) {
    return dirOrFile.endsWith('.json') ? openIndex(dirOrFile) : openSafetensors(dirOrFile);
  }
  if (!stat.isDirectory()) {
    throw new TunekitError('ERR_IO', `${dirOrFile}: expected a checkpoint folder or a regular file but it is ${fileKind(stat)}`);
  }
  const single = path.join(dirOrFile, `${stem}.safetensors`);
  if (fs.existsSync(single)) return openSafetensors(single);
  const index = path.join(dirOrFile, `${stem}.safetensors.index.json`);
  if (fs.existsSync(index)) return openIndex(index);
  throw new TunekitError('ERR_NOT_FOUND', `${dirOrFile}: expected ${stem}.safetensors or ${stem}.safetensors.index.json in the checkpoint folder, found neither`);
}

function openIndex(indexFile: string): SafetensorsReader {
  const { fd, size } = openRegularFile(indexFile, 'checkpoint index');
  let text: string;
  try {
    if (size > MAX_INDEX_BYTES) {
      throw formatError(indexFile, `index is ${size} bytes, above the ${MAX_INDEX_BYTES}-byte limit; not a checkpoint index?`);
    }
    const bytes = new Uint8Array(size);
    readExactly(fd, indexFile, bytes, 0, 'index');
    text = new TextDecoder('utf-8').decode(bytes);
  } finally {
    fs.closeSync(fd);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw formatError(indexFile, `index is not valid JSON (${(err as Error).message})`);
  }
  const weightMap = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
    throw formatError(indexFile, 'index must have a "weight_map" object {tensor name: shard file}');
  }
  return new ShardedReader(indexFile, weightMap as Record<string, string>);
}

/** Tensors to write: an array of RawTensor or a Map from name to the rest. */
export type TensorsToWrite = readonly RawTensor[] | ReadonlyMap<string, Omit<RawTensor, 'name'>>;

function normalizeTensors(where: string, tensors: TensorsToWrite): RawTensor[] {
  const list: RawTensor[] = tensors instanceof Map
    ? [...(tensors as ReadonlyMap<string, Omit<RawTensor, 'name'>>).entries()].map(([name, t]) => ({ ...t, name }))
    : [...(tensors as readonly RawTensor[])];
  const seen = new Set<string>();
  for (const t of list) {
    if (typeof t.name !== 'string' || t.name.length === 0 || t.name === '__metadata__') {
      throw new TunekitError('ERR_VALUE', `${where}: tensor names must be non-empty strings other than "__metadata__" but received ${JSON.stringify(t.name)}`);
    }
    if (seen.has(t.name)) throw new TunekitError('ERR_VALUE', `${where}: tensor "${t.name}" is given twice`);
    seen.add(t.name);
    if (hasLoneSurrogate(t.name)) {
      throw new TunekitError('ERR_VALUE', `${where}: tensor name ${JSON.stringify(t.name)} holds a lone surrogate (not valid Unicode; readers refuse such a file)`);
    }
    if (!isDtype(t.dtype)) {
      throw new TunekitError('ERR_DTYPE', `${where}: tensor "${t.name}": expected a dtype among ${DTYPES.join(', ')} but received ${JSON.stringify(t.dtype)}`);
    }
    if (!Array.isArray(t.shape) || !t.shape.every(isDim)) {
      throw new TunekitError('ERR_SHAPE', `${where}: tensor "${t.name}": expected shape as non-negative integers but received ${JSON.stringify(t.shape)}`);
    }
    if (!(t.bytes instanceof Uint8Array)) {
      throw new TunekitError('ERR_VALUE', `${where}: tensor "${t.name}": expected bytes as a Uint8Array`);
    }
    const expected = byteLength(t.shape, t.dtype);
    if (expected === null) {
      throw new TunekitError('ERR_SHAPE', `${where}: tensor "${t.name}": ${shapeProduct(t.shape)} elements of ${t.dtype} (${DTYPE_BITS[t.dtype]} bits each) do not fill whole bytes`);
    }
    if (t.bytes.length !== expected) {
      throw new TunekitError('ERR_SHAPE', `${where}: tensor "${t.name}": shape [${t.shape.join(', ')}] of ${t.dtype} needs ${expected} bytes but received ${t.bytes.length}`);
    }
  }
  return list;
}

/**
 * Rank of each dtype in the order the Python library writes tensors (it sorts by its dtype
 * enum, descending, then by name): larger elements first, so every tensor stays aligned to its
 * element size given the 8-aligned data start. Checked against safetensors 0.8 (the fuzz
 * corpus's Python-written seeds are rewritten byte for byte).
 */
const WRITE_RANK: Readonly<Record<SafetensorsDtype, number>> = {
  U64: 0, I64: 1, F64: 2, C64: 3, F32: 4, U32: 5, I32: 6, BF16: 7, F16: 8, U16: 9, I16: 10,
  F8_E5M2FNUZ: 11, F8_E4M3FNUZ: 12, F8_E8M0: 13, F8_E4M3: 14, F8_E5M2: 15, I8: 16, U8: 17,
  F6_E3M2: 18, F6_E2M3: 19, F4: 20, BOOL: 21,
};

/** True if `s` holds a UTF-16 surrogate without its pair (JSON would write it as an escape the reference refuses). */
function hasLoneSurrogate(s: string): boolean {
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/** Compares as Rust compares Strings: by UTF-8 bytes (differs from `<` on UTF-16 units for some chars). */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function pythonOrder(list: RawTensor[]): RawTensor[] {
  return [...list].sort((a, b) => WRITE_RANK[a.dtype] - WRITE_RANK[b.dtype] || compareUtf8(a.name, b.name));
}

/** Serializes the header (compact JSON, metadata first, padded with spaces to a multiple of 8). */
function buildHeader(ordered: RawTensor[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of ordered) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) {
    throw new TunekitError('ERR_VALUE', `the header would be ${padded} bytes, above the ${MAX_HEADER_BYTES}-byte limit readers accept (too many tensors or too much metadata)`);
  }
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

function checkMetadata(where: string, metadata: Record<string, string> | undefined): void {
  if (metadata === undefined) return;
  if (metadata === null || typeof metadata !== 'object') {
    throw new TunekitError('ERR_VALUE', `${where}: metadata must be an object of strings`);
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') {
      throw new TunekitError('ERR_VALUE', `${where}: metadata["${k}"] must be a string but received ${JSON.stringify(v)}`);
    }
    if (hasLoneSurrogate(k) || hasLoneSurrogate(v)) {
      throw new TunekitError('ERR_VALUE', `${where}: metadata["${k}"] holds a lone surrogate (not valid Unicode; readers refuse such a file)`);
    }
  }
}

/** Writes `parts` to `file` atomically: temporary file in the same folder, fsync, rename. */
function writeAtomically(file: string, parts: Iterable<Uint8Array>): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx');
    for (const p of parts) writeFully(fd, p);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== null) {
      try { fs.closeSync(fd); } catch { /* already failing */ }
    }
    try { fs.unlinkSync(tmp); } catch { /* may not exist */ }
    if (err instanceof TunekitError) throw err;
    throw ioError(file, 'write', err);
  }
}

/**
 * Writes a safetensors file atomically. Tensors are laid out as the Python library does
 * (element size descending, then name), so the same tensors give the same bytes.
 *
 * @example
 * writeSafetensors('adapter_model.safetensors',
 *   [{ name: 'w', dtype: 'F32', shape: [2], bytes: new Uint8Array(new Float32Array([1, 2]).buffer) }],
 *   { format: 'pt' });
 */
export function writeSafetensors(file: string, tensors: TensorsToWrite, metadata?: Record<string, string>): void {
  checkMetadata(file, metadata);
  const ordered = pythonOrder(normalizeTensors(file, tensors));
  writeAtomically(file, [buildHeader(ordered, metadata), ...ordered.map((t) => t.bytes)]);
}

/** Options of {@link writeShardedSafetensors}. */
export interface ShardedWriteOptions {
  /** Largest shard in bytes of tensor data (a single bigger tensor gets a shard of its own). Default 5 GB. */
  maxShardSize?: number;
  /** File stem. Default `model` (model.safetensors, model-00001-of-00002.safetensors, ...). */
  stem?: string;
  /** `__metadata__` written into every shard. */
  metadata?: Record<string, string>;
}

/**
 * Writes a checkpoint's tensors into `dir`, splitting them into shards of at most
 * `maxShardSize` bytes (in the order given, as transformers does) plus
 * `<stem>.safetensors.index.json`. If everything fits in one shard, writes only
 * `<stem>.safetensors`. Returns the file names written.
 *
 * @example
 * writeShardedSafetensors('out/', tensors, { maxShardSize: 2e9, metadata: { format: 'pt' } });
 * // -> ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']
 */
export function writeShardedSafetensors(dir: string, tensors: TensorsToWrite, options: ShardedWriteOptions = {}): string[] {
  const stem = options.stem ?? 'model';
  const max = options.maxShardSize ?? 5_000_000_000;
  if (!(max > 0)) throw new TunekitError('ERR_VALUE', `${dir}: maxShardSize must be a positive number of bytes but received ${max}`);
  checkMetadata(dir, options.metadata);
  const list = normalizeTensors(dir, tensors);
  const shards: RawTensor[][] = [];
  let current: RawTensor[] = [];
  let currentSize = 0;
  for (const t of list) {
    if (current.length > 0 && currentSize + t.bytes.length > max) {
      shards.push(current);
      current = [];
      currentSize = 0;
    }
    current.push(t);
    currentSize += t.bytes.length;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  fs.mkdirSync(dir, { recursive: true });
  if (shards.length === 1) {
    const name = `${stem}.safetensors`;
    writeSafetensors(path.join(dir, name), shards[0], options.metadata);
    return [name];
  }
  const n = shards.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  const written: string[] = [];
  let total = 0;
  shards.forEach((shard, i) => {
    const name = `${stem}-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    writeSafetensors(path.join(dir, name), shard, options.metadata);
    for (const t of shard) {
      weightMap[t.name] = name;
      total += t.bytes.length;
    }
    written.push(name);
  });
  const sortedMap: Record<string, string> = {};
  for (const k of Object.keys(weightMap).sort()) sortedMap[k] = weightMap[k];
  const index = { metadata: { total_size: total }, weight_map: sortedMap };
  const indexName = `${stem}.safetensors.index.json`;
  writeAtomically(path.join(dir, indexName), [new TextEncoder().encode(JSON.stringify(index, null, 2) + '\n')]);
  written.push(indexName);
  return written;
}

function f16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function f8e4m3ToNumber(b: number): number {
  // E4M3 "fn": bias 7, no infinities, S.1111.111 is NaN.
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 3) & 0xf;
  const frac = b & 0x7;
  if (exp === 15 && frac === 7) return NaN;
  if (exp === 0) return sign * frac * 2 ** -9;
  return sign * (1 + frac / 8) * 2 ** (exp - 7);
}

function f8e5m2ToNumber(b: number): number {
  // E5M2: bias 15, IEEE-like infinities and NaNs.
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 2) & 0x1f;
  const frac = b & 0x3;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  if (exp === 0) return sign * frac * 2 ** -16;
  return sign * (1 + frac / 4) * 2 ** (exp - 15);
}

function f8e4m3fnuzToNumber(b: number): number {
  // E4M3 "fnuz": bias 8, no infinities, no negative zero: 0x80 is the only NaN.
  if (b === 0x80) return NaN;
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 3) & 0xf;
  const frac = b & 0x7;
  if (exp === 0) return sign * frac * 2 ** -10;
  return sign * (1 + frac / 8) * 2 ** (exp - 8);
}

function f8e5m2fnuzToNumber(b: number): number {
  // E5M2 "fnuz": bias 16, no infinities, no negative zero: 0x80 is the only NaN.
  if (b === 0x80) return NaN;
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 2) & 0x1f;
  const frac = b & 0x3;
  if (exp === 0) return sign * frac * 2 ** -17;
  return sign * (1 + frac / 4) * 2 ** (exp - 16);
}

function f8e8m0ToNumber(b: number): number {
  // E8M0 (OCP MX scale): 2^(b - 127), unsigned, no zero; 0xFF is NaN.
  return b === 0xff ? NaN : 2 ** (b - 127);
}

/** Dtypes decodeValues reads only as raw bytes (no plain-number form per element). */
const RAW_ONLY: ReadonlySet<SafetensorsDtype> = new Set(['F4', 'F6_E2M3', 'F6_E3M2', 'C64']);

/**
 * Decodes a tensor's bytes into plain numbers (64-bit integers as bigint), C order. Meant for
 * tests, inspection and small tensors; the tensor layer has its own zero-copy views. F4, F6_*
 * and C64 tensors are read as raw bytes only: decodeValues refuses them with ERR_DTYPE.
 *
 * @example
 * decodeValues({ name: 'x', dtype: 'BF16', shape: [1], bytes: new Uint8Array([0x80, 0x3f]) }); // [1]
 */
export function decodeValues(t: Pick<RawTensor, 'dtype' | 'bytes'>): Array<number | bigint | boolean> {
  const v = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const size = DTYPE_SIZE[t.dtype];
  if (size === undefined) throw new TunekitError('ERR_DTYPE', `decodeValues: unknown dtype ${JSON.stringify(t.dtype)}`);
  if (RAW_ONLY.has(t.dtype)) {
    throw new TunekitError('ERR_DTYPE', `decodeValues: ${t.dtype} has no per-element number form here; use the tensor's raw bytes (readTensor(name).bytes)`);
  }
  const n = t.bytes.length / size;
  const out: Array<number | bigint | boolean> = new Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * size;
    switch (t.dtype) {
      case 'F64': out[i] = v.getFloat64(o, true); break;
      case 'F32': out[i] = v.getFloat32(o, true); break;
      case 'F16': out[i] = f16ToNumber(v.getUint16(o, true)); break;
      case 'BF16': {
        const bits = new DataView(new ArrayBuffer(4));
        bits.setUint32(0, v.getUint16(o, true) << 16, true);
        out[i] = bits.getFloat32(0, true);
        break;
      }
      case 'I64': out[i] = v.getBigInt64(o, true); break;
      case 'I32': out[i] = v.getInt32(o, true); break;
      case 'I16': out[i] = v.getInt16(o, true); break;
      case 'I8': out[i] = v.getInt8(o); break;
      case 'U8': out[i] = v.getUint8(o); break;
      case 'BOOL': out[i] = v.getUint8(o) !== 0; break;
      case 'F8_E4M3': out[i] = f8e4m3ToNumber(v.getUint8(o)); break;
      case 'F8_E5M2': out[i] = f8e5m2ToNumber(v.getUint8(o)); break;
      case 'U16': out[i] = v.getUint16(o, true); break;
      case 'U32': out[i] = v.getUint32(o, true); break;
      case 'U64': out[i] = v.getBigUint64(o, true); break;
      case 'F8_E4M3FNUZ': out[i] = f8e4m3fnuzToNumber(v.getUint8(o)); break;
      case 'F8_E5M2FNUZ': out[i] = f8e5m2fnuzToNumber(v.getUint8(o)); break;
      case 'F8_E8M0': out[i] = f8e8m0ToNumber(v.getUint8(o)); break;
    }
  }
  return out;
}
