/**
 * Reading safetensors files and sharded checkpoints, in two forms over one parser:
 * `openSafetensors` / `openCheckpoint` (fs/promises: every read is a positioned read on a
 * FileHandle, so the event loop runs while the bytes arrive) and `openSafetensorsSync` /
 * `openCheckpointSync` (blocking reads, for scripts and synchronous callers).
 *
 * Opening parses the header only; each read fetches one tensor, so a checkpoint is never held in
 * memory whole. Only regular files are read (a FIFO, a directory or a device is refused at once,
 * never read), and the header length is checked against the file size and a 100 MB limit before
 * anything is allocated. Headers are judged as the reference (the Rust/Python `safetensors`
 * library) judges them: see safetensors_header.ts.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { TunekitError } from '../errors.js';
import { HeaderError, parseSafetensorsHeader } from './safetensors_header.js';
import type { OpenCheckpointOptions, RawTensor, SafetensorsHeaderView, SafetensorsReader, SafetensorsReaderSync, TensorInfo } from './safetensors.js';

/** Larger headers are refused as absurd (the reference implementation uses the same bound). */
const MAX_HEADER_BYTES = 100_000_000;
/** Largest `model.safetensors.index.json` read (real ones are well under 1 MB). */
const MAX_INDEX_BYTES = 100_000_000;
/** Node's fs calls move at most 2 GiB - 1 at once; larger tensors are read in pieces. */
const IO_CHUNK = 1 << 30;
/** O_NONBLOCK makes the open of a FIFO return at once instead of waiting for a writer. */
const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

/** A file whose content the reference would refuse (every such verdict is ERR_FORMAT). */
function formatError(file: string, message: string): TunekitError {
  return new TunekitError('ERR_FORMAT', `${file}: ${message}`);
}

function ioError(file: string, action: string, err: unknown): TunekitError {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_IO';
  return new TunekitError(code, `${file}: cannot ${action}: ${e?.message ?? String(err)}`);
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

function notRegular(file: string, what: string, stat: fs.Stats): TunekitError {
  return new TunekitError('ERR_IO', `${file}: expected a regular file (${what}) but it is ${fileKind(stat)}; only regular files are read`);
}

function truncated(file: string, want: number, what: string, position: number, got: number): TunekitError {
  return formatError(file, `file is truncated: expected ${want} bytes of ${what} at byte ${position}, got ${got}`);
}

// ------------------------------------------------------------------ the header, parsed once

/** A file's parsed header: what both reader forms hold. */
interface ParsedFile {
  names: string[];
  header: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Absolute byte position of the data section. */
  dataStart: number;
}

/** The header length from the file's first 8 bytes, checked against the file size and the limit. */
function headerLength(file: string, size: number, lenBytes: Uint8Array): number {
  const n = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw formatError(file, `header length ${n} is absurd (limit ${MAX_HEADER_BYTES} bytes); not a safetensors file?`);
  }
  const length = Number(n);
  if (8 + length > size) {
    throw formatError(file, `header length ${length} runs past the end of the file (${size} bytes); the file is truncated or not safetensors`);
  }
  return length;
}

function checkMinimumSize(file: string, size: number): void {
  if (size < 8) throw formatError(file, `file is truncated: ${size} bytes, but a safetensors file starts with an 8-byte header length`);
}

/** Decodes and validates the header bytes of a file of `size` bytes. */
function parseHeaderBytes(file: string, size: number, headerBytes: Uint8Array): ParsedFile {
  let json: string;
  try {
    // ignoreBOM keeps a leading BOM in the text, where the parser refuses it as the reference does.
    json = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw formatError(file, 'header is not valid UTF-8');
  }
  const dataStart = 8 + headerBytes.length;
  let parsed: ReturnType<typeof parseSafetensorsHeader>;
  try {
    parsed = parseSafetensorsHeader(json, size - dataStart);
  } catch (err) {
    if (err instanceof HeaderError) throw formatError(file, err.message);
    throw err;
  }
  const header = new Map<string, TensorInfo>();
  for (const t of parsed.tensors) {
    // Offsets are at most the file size and dimensions at most 2^53 - 1 here (checked by the parser).
    header.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape.map(Number), dataOffsets: [Number(t.begin), Number(t.end)], file });
  }
  return { names: parsed.tensors.map((t) => t.name), header, metadata: metadataObject(parsed.metadata ?? []), dataStart };
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

/** The header view shared by every reader: names, entries, metadata. */
class HeaderView implements SafetensorsHeaderView {
  constructor(
    readonly path: string,
    readonly names: readonly string[],
    readonly header: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  has(name: string): boolean {
    return this.header.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.header.get(name);
    if (!t) throw new TunekitError('ERR_NOT_FOUND', this.unknownTensor(name));
    return t;
  }

  /** The message for a name not in the header (a checkpoint says "weight_map"). */
  protected unknownTensor(name: string): string {
    return `${this.path}: no tensor named "${name}" (the file has ${this.names.length} tensors${this.names.length ? `, e.g. "${this.names[0]}"` : ''})`;
  }

  /** The tensor's byte range, checking `target` (when given) holds exactly its bytes. */
  protected range(name: string, target?: Uint8Array): { t: TensorInfo; length: number } {
    const t = this.info(name);
    const length = t.dataOffsets[1] - t.dataOffsets[0];
    if (target && target.length !== length) throw new TunekitError('ERR_SHAPE', `${this.path}: tensor "${name}" has ${length} bytes but the target holds ${target.length}`);
    return { t, length };
  }
}

// ------------------------------------------------------------------ one file, blocking reads

/**
 * Opens `file` for reading only if it is a regular file: fstat on the descriptor (not a stat of
 * the path) refuses anything else, so nothing is ever read from a pipe or device.
 */
function openRegularFileSync(file: string, what: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, OPEN_FLAGS);
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
    throw notRegular(file, what, stat);
  }
  return { fd, size: stat.size };
}

/** Reads exactly `target.length` bytes at `position` into `target`, or throws (truncated file). */
function readExactlySync(fd: number, file: string, target: Uint8Array, position: number, what: string): void {
  let done = 0;
  while (done < target.length) {
    const want = Math.min(IO_CHUNK, target.length - done);
    let got: number;
    try {
      got = fs.readSync(fd, target, done, want, position + done);
    } catch (err) {
      throw ioError(file, `read ${what}`, err);
    }
    if (got === 0) throw truncated(file, target.length, what, position, done);
    done += got;
  }
}

class FileReaderSync extends HeaderView implements SafetensorsReaderSync {
  private fd: number | null;
  private readonly dataStart: number;

  static open(file: string): FileReaderSync {
    const { fd, size } = openRegularFileSync(file, 'safetensors file');
    try {
      checkMinimumSize(file, size);
      const lenBytes = new Uint8Array(8);
      readExactlySync(fd, file, lenBytes, 0, 'header length');
      const headerBytes = new Uint8Array(headerLength(file, size, lenBytes));
      readExactlySync(fd, file, headerBytes, 8, 'header');
      return new FileReaderSync(file, fd, parseHeaderBytes(file, size, headerBytes));
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  private constructor(file: string, fd: number, p: ParsedFile) {
    super(file, p.names, p.header, p.metadata);
    this.fd = fd;
    this.dataStart = p.dataStart;
  }

  read(name: string): Uint8Array {
    return this.readAt(name, null, 'read');
  }

  readTensor(name: string): RawTensor {
    const t = this.info(name);
    return { name, dtype: t.dtype, shape: [...t.shape], bytes: this.read(name) };
  }

  readInto(name: string, target: Uint8Array): void {
    this.readAt(name, target, 'readInto');
  }

  /** Reads a tensor's bytes into `target`, or into a new array when null (allocated after every check). */
  private readAt(name: string, target: Uint8Array | null, call: string): Uint8Array {
    const { t, length } = this.range(name, target ?? undefined);
    if (this.fd === null) throw new TunekitError('ERR_IO', `${this.path}: ${call}("${name}") after close()`);
    const out = target ?? new Uint8Array(length);
    readExactlySync(this.fd, this.path, out, this.dataStart + t.dataOffsets[0], `tensor "${name}"`);
    return out;
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}

// ------------------------------------------------------------------ one file, fs/promises

async function openRegularFile(file: string, what: string): Promise<{ fh: fsp.FileHandle; size: number }> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, OPEN_FLAGS);
  } catch (err) {
    throw ioError(file, `open ${what}`, err);
  }
  let stat: fs.Stats;
  try {
    stat = await fh.stat();
  } catch (err) {
    await fh.close();
    throw ioError(file, `stat ${what}`, err);
  }
  if (!stat.isFile()) {
    await fh.close();
    throw notRegular(file, what, stat);
  }
  return { fh, size: stat.size };
}

async function readExactly(fh: fsp.FileHandle, file: string, target: Uint8Array, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const want = Math.min(IO_CHUNK, target.length - done);
    let got: number;
    try {
      got = (await fh.read(target, done, want, position + done)).bytesRead;
    } catch (err) {
      throw ioError(file, `read ${what}`, err);
    }
    if (got === 0) throw truncated(file, target.length, what, position, done);
    done += got;
  }
}

class FileReader extends HeaderView implements SafetensorsReader {
  private fh: fsp.FileHandle | null;
  private readonly dataStart: number;

  static async open(file: string): Promise<FileReader> {
    const { fh, size } = await openRegularFile(file, 'safetensors file');
    try {
      checkMinimumSize(file, size);
      const lenBytes = new Uint8Array(8);
      await readExactly(fh, file, lenBytes, 0, 'header length');
      const headerBytes = new Uint8Array(headerLength(file, size, lenBytes));
      await readExactly(fh, file, headerBytes, 8, 'header');
      return new FileReader(file, fh, parseHeaderBytes(file, size, headerBytes));
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  private constructor(file: string, fh: fsp.FileHandle, p: ParsedFile) {
    super(file, p.names, p.header, p.metadata);
    this.fh = fh;
    this.dataStart = p.dataStart;
  }

  read(name: string): Promise<Uint8Array> {
    return this.readAt(name, null, 'read');
  }

  async readTensor(name: string): Promise<RawTensor> {
    const t = this.info(name);
    return { name, dtype: t.dtype, shape: [...t.shape], bytes: await this.read(name) };
  }

  async readInto(name: string, target: Uint8Array): Promise<void> {
    await this.readAt(name, target, 'readInto');
  }

  /** Reads a tensor's bytes into `target`, or into a new array when null (allocated after every check). */
  private async readAt(name: string, target: Uint8Array | null, call: string): Promise<Uint8Array> {
    const { t, length } = this.range(name, target ?? undefined);
    if (this.fh === null) throw new TunekitError('ERR_IO', `${this.path}: ${call}("${name}") after close()`);
    const out = target ?? new Uint8Array(length);
    await readExactly(this.fh, this.path, out, this.dataStart + t.dataOffsets[0], `tensor "${name}"`);
    return out;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null; // reads started after this point fail with ERR_IO, not EBADF
    await fh?.close();
  }
}

/**
 * Opens one safetensors file: parses and validates its header; each tensor is read on demand
 * through fs/promises, so the event loop runs between (and during) reads.
 *
 * @example
 * const f = await openSafetensors('model.safetensors');
 * const wte = await f.readTensor('transformer.wte.weight'); // { dtype: 'F32', shape: [50257, 768], bytes }
 * await f.close();
 */
export function openSafetensors(file: string): Promise<SafetensorsReader> {
  return FileReader.open(file);
}

/**
 * {@link openSafetensors} with blocking reads.
 *
 * @example
 * const f = openSafetensorsSync('model.safetensors');
 * const wte = f.readTensor('transformer.wte.weight');
 * f.close();
 */
export function openSafetensorsSync(file: string): SafetensorsReaderSync {
  return FileReaderSync.open(file);
}

// ------------------------------------------------------------------ sharded checkpoints

/** The weight_map of an index file's text, checked: a JSON object of {tensor: shard file}. */
function parseIndex(indexFile: string, text: string): Record<string, unknown> {
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
  return weightMap as Record<string, unknown>;
}

/** The shard files a weight_map names, each once, in first-use order; each must be a plain name inside the folder. */
function shardFiles(indexFile: string, weightMap: Record<string, unknown>): string[] {
  const files = new Set<string>();
  for (const [name, shardFile] of Object.entries(weightMap)) {
    if (typeof shardFile !== 'string' || shardFile.includes('..') || path.isAbsolute(shardFile)) {
      throw formatError(indexFile, `weight_map["${name}"] must be a file name inside the checkpoint folder but is ${JSON.stringify(shardFile)}`);
    }
    files.add(shardFile);
  }
  return [...files];
}

/** Each tensor's header entry and owning shard, checking every tensor is in the shard the map names. */
function mergeShards<R extends HeaderView>(indexFile: string, weightMap: Record<string, unknown>, shards: ReadonlyMap<string, R>): { header: Map<string, TensorInfo>; owner: Map<string, R> } {
  const header = new Map<string, TensorInfo>();
  const owner = new Map<string, R>();
  for (const [name, shardFile] of Object.entries(weightMap)) {
    const shard = shards.get(shardFile as string)!;
    const info = shard.header.get(name);
    if (!info) throw formatError(indexFile, `weight_map says tensor "${name}" is in ${String(shardFile)}, but that shard has no such tensor`);
    header.set(name, info);
    owner.set(name, shard);
  }
  return { header, owner };
}

function checkpointUnknownTensor(indexFile: string, names: readonly string[], name: string): string {
  return `${indexFile}: no tensor named "${name}" in the checkpoint's weight_map (${names.length} tensors)`;
}

/** A reader over several shards, presenting their union (blocking reads). */
class ShardedReaderSync extends HeaderView implements SafetensorsReaderSync {
  private readonly owner: Map<string, FileReaderSync>;
  private readonly shards: FileReaderSync[];

  static open(indexFile: string): ShardedReaderSync {
    const { fd, size } = openRegularFileSync(indexFile, 'checkpoint index');
    let text: string;
    try {
      if (size > MAX_INDEX_BYTES) throw formatError(indexFile, `index is ${size} bytes, above the ${MAX_INDEX_BYTES}-byte limit; not a checkpoint index?`);
      const bytes = new Uint8Array(size);
      readExactlySync(fd, indexFile, bytes, 0, 'index');
      text = new TextDecoder('utf-8').decode(bytes);
    } finally {
      fs.closeSync(fd);
    }
    const weightMap = parseIndex(indexFile, text);
    const shards = new Map<string, FileReaderSync>();
    try {
      for (const f of shardFiles(indexFile, weightMap)) shards.set(f, FileReaderSync.open(path.join(path.dirname(indexFile), f)));
      return new ShardedReaderSync(indexFile, weightMap, shards);
    } catch (err) {
      for (const s of shards.values()) s.close();
      throw err;
    }
  }

  private constructor(indexFile: string, weightMap: Record<string, unknown>, shards: Map<string, FileReaderSync>) {
    const { header, owner } = mergeShards(indexFile, weightMap, shards);
    const first = shards.values().next().value;
    super(indexFile, Object.keys(weightMap), header, first?.metadata ?? {});
    this.owner = owner;
    this.shards = [...shards.values()];
  }

  protected override unknownTensor(name: string): string {
    return checkpointUnknownTensor(this.path, this.names, name);
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

/** A reader over several shards, presenting their union (fs/promises). */
class ShardedReader extends HeaderView implements SafetensorsReader {
  private readonly owner: Map<string, FileReader>;
  private readonly shards: FileReader[];

  static async open(indexFile: string): Promise<ShardedReader> {
    const { fh, size } = await openRegularFile(indexFile, 'checkpoint index');
    let text: string;
    try {
      if (size > MAX_INDEX_BYTES) throw formatError(indexFile, `index is ${size} bytes, above the ${MAX_INDEX_BYTES}-byte limit; not a checkpoint index?`);
      const bytes = new Uint8Array(size);
      await readExactly(fh, indexFile, bytes, 0, 'index');
      text = new TextDecoder('utf-8').decode(bytes);
    } finally {
      await fh.close();
    }
    const weightMap = parseIndex(indexFile, text);
    const shards = new Map<string, FileReader>();
    try {
      for (const f of shardFiles(indexFile, weightMap)) shards.set(f, await FileReader.open(path.join(path.dirname(indexFile), f)));
      return new ShardedReader(indexFile, weightMap, shards);
    } catch (err) {
      for (const s of shards.values()) await s.close();
      throw err;
    }
  }

  private constructor(indexFile: string, weightMap: Record<string, unknown>, shards: Map<string, FileReader>) {
    const { header, owner } = mergeShards(indexFile, weightMap, shards);
    const first = shards.values().next().value;
    super(indexFile, Object.keys(weightMap), header, first?.metadata ?? {});
    this.owner = owner;
    this.shards = [...shards.values()];
  }

  protected override unknownTensor(name: string): string {
    return checkpointUnknownTensor(this.path, this.names, name);
  }

  async read(name: string): Promise<Uint8Array> {
    this.info(name);
    return this.owner.get(name)!.read(name);
  }

  async readTensor(name: string): Promise<RawTensor> {
    this.info(name);
    return this.owner.get(name)!.readTensor(name);
  }

  async readInto(name: string, target: Uint8Array): Promise<void> {
    this.info(name);
    return this.owner.get(name)!.readInto(name, target);
  }

  async close(): Promise<void> {
    for (const s of this.shards) await s.close();
  }
}

// ------------------------------------------------------------------ checkpoint folders

/** Which file a checkpoint path means: a .safetensors file, an index JSON, or one of them in a folder. */
type CheckpointFile = { kind: 'file' | 'index'; file: string };

function checkpointFile(dirOrFile: string, stem: string, stat: fs.Stats, exists: (p: string) => boolean): CheckpointFile {
  if (stat.isFile()) return { kind: dirOrFile.endsWith('.json') ? 'index' : 'file', file: dirOrFile };
  if (!stat.isDirectory()) throw new TunekitError('ERR_IO', `${dirOrFile}: expected a checkpoint folder or a regular file but it is ${fileKind(stat)}`);
  const single = path.join(dirOrFile, `${stem}.safetensors`);
  if (exists(single)) return { kind: 'file', file: single };
  const index = path.join(dirOrFile, `${stem}.safetensors.index.json`);
  if (exists(index)) return { kind: 'index', file: index };
  throw new TunekitError('ERR_NOT_FOUND', `${dirOrFile}: expected ${stem}.safetensors or ${stem}.safetensors.index.json in the checkpoint folder, found neither`);
}

/**
 * Opens the weights of a Hugging Face checkpoint folder: `model.safetensors`, or the shards
 * listed in `model.safetensors.index.json` (weight_map), behind one reader whose reads go through
 * fs/promises. A path to a `.safetensors` file or to an index JSON is accepted too.
 *
 * @example
 * const ckpt = await openCheckpoint('models/llama-tiny');   // sharded or not
 * for (const name of ckpt.names) console.log(name, ckpt.info(name).shape);
 * await ckpt.close();
 */
export async function openCheckpoint(dirOrFile: string, options: OpenCheckpointOptions = {}): Promise<SafetensorsReader> {
  let stat: fs.Stats;
  try {
    stat = await fsp.stat(dirOrFile);
  } catch (err) {
    throw ioError(dirOrFile, 'open checkpoint', err);
  }
  // the folder's entries are checked with the blocking existsSync: two stat calls, no data read
  const { kind, file } = checkpointFile(dirOrFile, options.stem ?? 'model', stat, fs.existsSync);
  return kind === 'index' ? ShardedReader.open(file) : FileReader.open(file);
}

/**
 * {@link openCheckpoint} with blocking reads.
 *
 * @example
 * const ckpt = openCheckpointSync('models/llama-tiny');
 * const shape = ckpt.info('model.embed_tokens.weight').shape;
 * ckpt.close();
 */
export function openCheckpointSync(dirOrFile: string, options: OpenCheckpointOptions = {}): SafetensorsReaderSync {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dirOrFile);
  } catch (err) {
    throw ioError(dirOrFile, 'open checkpoint', err);
  }
  const { kind, file } = checkpointFile(dirOrFile, options.stem ?? 'model', stat, fs.existsSync);
  return kind === 'index' ? ShardedReaderSync.open(file) : FileReaderSync.open(file);
}
