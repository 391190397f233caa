/**
 * Writing safetensors files and sharded checkpoints, atomically (temporary file in the same
 * folder, fsync, rename: a crash never leaves a half-written file under the final name), in two
 * forms over one layout: `writeSafetensors` / `writeShardedSafetensors` (fs/promises) and
 * `writeSafetensorsSync` / `writeShardedSafetensorsSync` (blocking writes). Tensors are laid out
 * as the Python library lays them out, so the same tensors give the same bytes.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { TunekitError } from '../errors.js';
import { DTYPE_BITS, isSafetensorsDtype, type SafetensorsDtype } from './safetensors_header.js';
import type { RawTensor, ShardedWriteOptions, TensorsToWrite } from './safetensors.js';

/** Larger headers are refused by readers (the reference implementation uses the same bound). */
const MAX_HEADER_BYTES = 100_000_000;
/** Node's fs calls move at most 2 GiB - 1 at once; larger tensors are written in pieces. */
const IO_CHUNK = 1 << 30;
const DTYPES = Object.keys(DTYPE_BITS) as SafetensorsDtype[];
const isDtype = isSafetensorsDtype;

function isDim(d: unknown): d is number {
  return typeof d === 'number' && Number.isSafeInteger(d) && d >= 0;
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

function ioError(file: string, action: string, err: unknown): TunekitError {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_IO';
  return new TunekitError(code, `${file}: cannot ${action}: ${e?.message ?? String(err)}`);
}

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

/** The file's parts in order (header, then each tensor's bytes), after checking the input. */
function fileParts(file: string, tensors: TensorsToWrite, metadata?: Record<string, string>): Uint8Array[] {
  checkMetadata(file, metadata);
  const ordered = pythonOrder(normalizeTensors(file, tensors));
  return [buildHeader(ordered, metadata), ...ordered.map((t) => t.bytes)];
}

function tmpName(file: string): string {
  return `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** Writes `parts` to `file` atomically: temporary file in the same folder, fsync, rename. */
function writeAtomicallySync(file: string, parts: Iterable<Uint8Array>): void {
  const tmp = tmpName(file);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx');
    for (const p of parts) {
      for (let done = 0; done < p.length;) done += fs.writeSync(fd, p, done, Math.min(IO_CHUNK, p.length - done));
    }
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

/** {@link writeAtomicallySync} through fs/promises. */
async function writeAtomically(file: string, parts: Iterable<Uint8Array>): Promise<void> {
  const tmp = tmpName(file);
  let fh: fsp.FileHandle | null = null;
  try {
    fh = await fsp.open(tmp, 'wx');
    for (const p of parts) {
      for (let done = 0; done < p.length;) done += (await fh.write(p, done, Math.min(IO_CHUNK, p.length - done))).bytesWritten;
    }
    await fh.sync();
    await fh.close();
    fh = null;
    await fsp.rename(tmp, file);
  } catch (err) {
    if (fh !== null) await fh.close().catch(() => undefined);
    await fsp.unlink(tmp).catch(() => undefined);
    if (err instanceof TunekitError) throw err;
    throw ioError(file, 'write', err);
  }
}

/**
 * Writes a safetensors file atomically through fs/promises. Tensors are laid out as the Python
 * library does (element size descending, then name), so the same tensors give the same bytes.
 *
 * @example
 * await writeSafetensors('adapter_model.safetensors',
 *   [{ name: 'w', dtype: 'F32', shape: [2], bytes: new Uint8Array(new Float32Array([1, 2]).buffer) }],
 *   { format: 'pt' });
 */
export async function writeSafetensors(file: string, tensors: TensorsToWrite, metadata?: Record<string, string>): Promise<void> {
  await writeAtomically(file, fileParts(file, tensors, metadata));
}

/**
 * {@link writeSafetensors} with blocking writes.
 *
 * @example
 * writeSafetensorsSync('w.safetensors', [{ name: 'w', dtype: 'F32', shape: [1], bytes: new Uint8Array(4) }]);
 */
export function writeSafetensorsSync(file: string, tensors: TensorsToWrite, metadata?: Record<string, string>): void {
  writeAtomicallySync(file, fileParts(file, tensors, metadata));
}

/** The files of a sharded write: each shard's name and tensors, and the index (null for one shard). */
interface ShardPlan {
  shards: { name: string; tensors: RawTensor[] }[];
  index: { name: string; bytes: Uint8Array } | null;
}

/**
 * Splits the tensors into shards of at most `maxShardSize` bytes (in the order given, as
 * transformers does); more than one shard gets `<stem>-0000i-of-0000n.safetensors` names and an
 * index JSON, one shard is `<stem>.safetensors` alone.
 */
function planShards(dir: string, tensors: TensorsToWrite, options: ShardedWriteOptions): ShardPlan {
  const stem = options.stem ?? 'model';
  const max = options.maxShardSize ?? 5_000_000_000;
  if (!(max > 0)) throw new TunekitError('ERR_VALUE', `${dir}: maxShardSize must be a positive number of bytes but received ${max}`);
  checkMetadata(dir, options.metadata);
  const list = normalizeTensors(dir, tensors);
  const groups: RawTensor[][] = [];
  let current: RawTensor[] = [];
  let currentSize = 0;
  for (const t of list) {
    if (current.length > 0 && currentSize + t.bytes.length > max) {
      groups.push(current);
      current = [];
      currentSize = 0;
    }
    current.push(t);
    currentSize += t.bytes.length;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);
  if (groups.length === 1) return { shards: [{ name: `${stem}.safetensors`, tensors: groups[0]! }], index: null };
  const n = groups.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const shards = groups.map((g, i) => ({ name: `${stem}-${pad(i + 1)}-of-${pad(n)}.safetensors`, tensors: g }));
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const s of shards) {
    for (const t of s.tensors) {
      weightMap[t.name] = s.name;
      total += t.bytes.length;
    }
  }
  const sortedMap: Record<string, string> = {};
  for (const k of Object.keys(weightMap).sort()) sortedMap[k] = weightMap[k]!;
  const index = { metadata: { total_size: total }, weight_map: sortedMap };
  return { shards, index: { name: `${stem}.safetensors.index.json`, bytes: new TextEncoder().encode(JSON.stringify(index, null, 2) + '\n') } };
}

function plannedFiles(plan: ShardPlan): string[] {
  return [...plan.shards.map((s) => s.name), ...(plan.index ? [plan.index.name] : [])];
}

/**
 * Writes a checkpoint's tensors into `dir` (created if needed) through fs/promises, splitting
 * them into shards of at most `maxShardSize` bytes (in the order given, as transformers does)
 * plus `<stem>.safetensors.index.json`. If everything fits in one shard, writes only
 * `<stem>.safetensors`. Returns the file names written.
 *
 * @example
 * await writeShardedSafetensors('out/', tensors, { maxShardSize: 2e9, metadata: { format: 'pt' } });
 * // -> ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']
 */
export async function writeShardedSafetensors(dir: string, tensors: TensorsToWrite, options: ShardedWriteOptions = {}): Promise<string[]> {
  const plan = planShards(dir, tensors, options);
  await fsp.mkdir(dir, { recursive: true });
  for (const s of plan.shards) await writeSafetensors(path.join(dir, s.name), s.tensors, options.metadata);
  if (plan.index) await writeAtomically(path.join(dir, plan.index.name), [plan.index.bytes]);
  return plannedFiles(plan);
}

/**
 * {@link writeShardedSafetensors} with blocking writes.
 *
 * @example
 * writeShardedSafetensorsSync('out/', tensors, { maxShardSize: 2e9 });
 */
export function writeShardedSafetensorsSync(dir: string, tensors: TensorsToWrite, options: ShardedWriteOptions = {}): string[] {
  const plan = planShards(dir, tensors, options);
  fs.mkdirSync(dir, { recursive: true });
  for (const s of plan.shards) writeSafetensorsSync(path.join(dir, s.name), s.tensors, options.metadata);
  if (plan.index) writeAtomicallySync(path.join(dir, plan.index.name), [plan.index.bytes]);
  return plannedFiles(plan);
}
