import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  openSafetensors, openSafetensorsSync, openCheckpoint, openCheckpointSync, writeSafetensors, writeSafetensorsSync,
  writeShardedSafetensors, writeShardedSafetensorsSync, decodeValues, DTYPE_SIZE, type RawTensor, type SafetensorsDtype,
} from '../../lib/io/safetensors.js';
import { TunekitError } from '../../lib/errors.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'safetensors');

interface ExpectedTensor { dtype: SafetensorsDtype; shape: number[]; hex: string; values: Array<number | string | boolean> }
interface ExpectedFile {
  metadata?: Record<string, string>; header_length?: number; order?: string[];
  files?: string[]; weight_map?: Record<string, string>; tensors: Record<string, ExpectedTensor>;
}
const expected: { files: Record<string, ExpectedFile> } = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8'));

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const fromHex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

function expectedValue(v: number | string | boolean, dtype: SafetensorsDtype): number | bigint | boolean {
  if (dtype === 'I64') return BigInt(v as number | string);
  if (v === 'nan') return NaN;
  if (v === 'inf') return Infinity;
  if (v === '-inf') return -Infinity;
  if (v === '-0') return -0;
  return v as number | boolean;
}

function tensorsOf(file: ExpectedFile): RawTensor[] {
  return Object.entries(file.tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, bytes: fromHex(t.hex) }));
}

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-st-test-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function expectTunekitError(fn: () => unknown, code: string, ...fragments: Array<string | RegExp>): TunekitError {
  let caught: unknown;
  try { fn(); } catch (e) { caught = e; }
  expect(caught, 'expected a TunekitError').toBeInstanceOf(TunekitError);
  const err = caught as TunekitError;
  expect(err.name).toBe('TunekitError');
  expect(err.code).toBe(code);
  for (const f of fragments) expect(err.message).toMatch(f);
  return err;
}

describe('reading files written by Python safetensors', () => {
  for (const rel of ['dtypes.safetensors', 'metadata.safetensors', 'no_metadata.safetensors']) {
    it(`reads ${rel}: header, metadata, bytes and values`, () => {
      const want = expected.files[rel];
      const f = openSafetensorsSync(path.join(FIXTURES, rel));
      try {
        expect(f.metadata).toEqual(want.metadata);
        expect([...f.names]).toEqual(want.order);
        expect(new Set(f.header.keys())).toEqual(new Set(Object.keys(want.tensors)));
        for (const [name, t] of Object.entries(want.tensors)) {
          const info = f.info(name);
          expect(info.dtype).toBe(t.dtype);
          expect(info.shape).toEqual(t.shape);
          expect(info.dataOffsets[1] - info.dataOffsets[0]).toBe(t.hex.length / 2);
          const got = f.readTensor(name);
          expect(hex(got.bytes), name).toBe(t.hex);
          const values = decodeValues(got);
          expect(values.length).toBe(t.values.length);
          values.forEach((v, i) => expect(v, `${name}[${i}]`).toStrictEqual(expectedValue(t.values[i], t.dtype)));
        }
      } finally {
        f.close();
      }
    });
  }

  it('covers the twelve classic dtypes (the seeds of the fuzz corpus cover the other ten)', () => {
    const dtypes = new Set(Object.values(expected.files['dtypes.safetensors'].tensors).map((t) => t.dtype));
    expect(dtypes).toEqual(new Set(['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'F8_E4M3', 'F8_E5M2']));
    for (const d of dtypes) expect(Object.keys(DTYPE_SIZE)).toContain(d);
  });

  it('opens a single-file checkpoint folder', () => {
    const want = expected.files.single;
    const ckpt = openCheckpointSync(path.join(FIXTURES, 'single'));
    try {
      expect(new Set(ckpt.names)).toEqual(new Set(Object.keys(want.tensors)));
      for (const [name, t] of Object.entries(want.tensors)) expect(hex(ckpt.read(name))).toBe(t.hex);
    } finally { ckpt.close(); }
  });

  it('opens a sharded checkpoint through its index, names across shards', () => {
    const want = expected.files.sharded;
    expect(want.files!.filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(1);
    const ckpt = openCheckpointSync(path.join(FIXTURES, 'sharded'));
    try {
      expect(new Set(ckpt.names)).toEqual(new Set(Object.keys(want.tensors)));
      for (const [name, t] of Object.entries(want.tensors)) {
        expect(path.basename(ckpt.info(name).file)).toBe(want.weight_map![name]);
        expect(ckpt.info(name).shape).toEqual(t.shape);
        expect(hex(ckpt.readTensor(name).bytes)).toBe(t.hex);
      }
      expect(ckpt.metadata).toEqual({ format: 'pt' });
    } finally { ckpt.close(); }
    // The index file itself is accepted too.
    const viaIndex = openCheckpointSync(path.join(FIXTURES, 'sharded', 'model.safetensors.index.json'));
    expect(viaIndex.names.length).toBe(Object.keys(want.tensors).length);
    viaIndex.close();
  });

  it('says which tensor is unknown and refuses reads after close', () => {
    const f = openSafetensorsSync(path.join(FIXTURES, 'no_metadata.safetensors'));
    expectTunekitError(() => f.read('nope'), 'ERR_NOT_FOUND', /nope/, /no_metadata\.safetensors/);
    f.close();
    expectTunekitError(() => f.read('only'), 'ERR_IO', /after close/);
    expectTunekitError(() => openSafetensorsSync(path.join(tmp, 'missing.safetensors')), 'ERR_NOT_FOUND', /missing\.safetensors/);
    expectTunekitError(() => openCheckpointSync(tmp), 'ERR_NOT_FOUND', /model\.safetensors/);
  });
});

describe('writer', () => {
  it('writes byte-identical files to Python for the same tensors and metadata', () => {
    const want = expected.files['dtypes.safetensors'];
    const out = path.join(tmp, 'dtypes.safetensors');
    // Shuffled input order: the writer sorts as Python does.
    writeSafetensorsSync(out, tensorsOf(want).reverse(), { format: 'pt' });
    expect(fs.readFileSync(out).equals(fs.readFileSync(path.join(FIXTURES, 'dtypes.safetensors')))).toBe(true);
    const same = path.join(tmp, 'no_metadata.safetensors');
    writeSafetensorsSync(same, new Map([['only', { dtype: 'I32' as const, shape: [3], bytes: fromHex(expected.files['no_metadata.safetensors'].tensors.only.hex) }]]));
    expect(fs.readFileSync(same).equals(fs.readFileSync(path.join(FIXTURES, 'no_metadata.safetensors')))).toBe(true);
  });

  it('round-trips through our reader, metadata included, header padded to 8', () => {
    const tensors = tensorsOf(expected.files['dtypes.safetensors']);
    const out = path.join(tmp, 'rt.safetensors');
    const metadata = { format: 'pt', 'ünï': 'cödé ✓', empty: '' };
    writeSafetensorsSync(out, tensors, metadata);
    const buf = fs.readFileSync(out);
    expect(Number(buf.readBigUInt64LE(0)) % 8).toBe(0);
    const f = openSafetensorsSync(out);
    expect(f.metadata).toEqual(metadata);
    for (const t of tensors) {
      expect(f.info(t.name).dtype).toBe(t.dtype);
      expect(f.info(t.name).shape).toEqual(t.shape);
      expect(hex(f.read(t.name))).toBe(hex(t.bytes));
    }
    f.close();
    expect(fs.readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('writes an empty file that reads back empty', () => {
    const out = path.join(tmp, 'empty.safetensors');
    writeSafetensorsSync(out, []);
    const f = openSafetensorsSync(out);
    expect(f.names).toEqual([]);
    f.close();
  });

  it('writes shards and an index like transformers, readable as one checkpoint', () => {
    const want = expected.files.sharded;
    const dir = path.join(tmp, 'sharded');
    const files = writeShardedSafetensorsSync(dir, tensorsOf(want), { maxShardSize: 1500, metadata: { format: 'pt' } });
    expect(files).toEqual(want.files);
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index.weight_map).toEqual(want.weight_map);
    expect(Object.keys(index.weight_map)).toEqual(Object.keys(index.weight_map).sort());
    expect(index.metadata.total_size).toBe(tensorsOf(want).reduce((s, t) => s + t.bytes.length, 0));
    const ckpt = openCheckpointSync(dir);
    for (const t of tensorsOf(want)) expect(hex(ckpt.read(t.name))).toBe(hex(t.bytes));
    ckpt.close();
    // Everything in one shard: a plain model.safetensors, no index.
    const one = path.join(tmp, 'one');
    expect(writeShardedSafetensorsSync(one, tensorsOf(want))).toEqual(['model.safetensors']);
  });

  it('validates its input with clear errors', () => {
    const out = path.join(tmp, 'bad.safetensors');
    const ok: RawTensor = { name: 'x', dtype: 'F32', shape: [2], bytes: new Uint8Array(8) };
    expectTunekitError(() => writeSafetensorsSync(out, [{ ...ok, bytes: new Uint8Array(7) }]), 'ERR_SHAPE', /"x"/, /needs 8 bytes but received 7/);
    expectTunekitError(() => writeSafetensorsSync(out, [{ ...ok, dtype: 'F128' as SafetensorsDtype }]), 'ERR_DTYPE', /F128/);
    expectTunekitError(() => writeSafetensorsSync(out, [ok, ok]), 'ERR_VALUE', /twice/);
    expectTunekitError(() => writeSafetensorsSync(out, [{ ...ok, shape: [-2] }]), 'ERR_SHAPE', /-2/);
    expectTunekitError(() => writeSafetensorsSync(out, [ok], { n: 3 as unknown as string }), 'ERR_VALUE', /metadata/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('leaves no temporary file and no target when writing fails', () => {
    const out = path.join(tmp, 'no-such-dir', 'x.safetensors');
    expectTunekitError(() => writeSafetensorsSync(out, []), 'ERR_NOT_FOUND', /x\.safetensors/);
  });
});

async function expectRejection(p: Promise<unknown>, code: string, ...fragments: Array<string | RegExp>): Promise<TunekitError> {
  const caught = await p.then(() => undefined, (e: unknown) => e);
  expect(caught, 'expected a rejection with a TunekitError').toBeInstanceOf(TunekitError);
  const err = caught as TunekitError;
  expect(err.code).toBe(code);
  for (const f of fragments) expect(err.message).toMatch(f);
  return err;
}

describe('the fs/promises forms (openSafetensors, openCheckpoint, writeSafetensors, writeShardedSafetensors)', () => {
  it('read the Python-written files as the blocking reader does: names, metadata, bytes, readInto', async () => {
    for (const rel of ['dtypes.safetensors', 'metadata.safetensors', 'no_metadata.safetensors']) {
      const want = expected.files[rel];
      const f = await openSafetensors(path.join(FIXTURES, rel));
      try {
        expect(f.metadata).toEqual(want.metadata);
        expect([...f.names]).toEqual(want.order);
        for (const [name, t] of Object.entries(want.tensors)) {
          expect(f.info(name).shape).toEqual(t.shape);
          expect(hex((await f.readTensor(name)).bytes), name).toBe(t.hex);
          const target = new Uint8Array(t.hex.length / 2);
          await f.readInto(name, target);
          expect(hex(target), name).toBe(t.hex);
        }
      } finally {
        await f.close();
      }
    }
  });

  it('open a sharded checkpoint (folder or index) and read across shards', async () => {
    const want = expected.files.sharded;
    for (const where of [path.join(FIXTURES, 'sharded'), path.join(FIXTURES, 'sharded', 'model.safetensors.index.json')]) {
      const ckpt = await openCheckpoint(where);
      try {
        expect(new Set(ckpt.names)).toEqual(new Set(Object.keys(want.tensors)));
        expect(ckpt.metadata).toEqual({ format: 'pt' });
        for (const [name, t] of Object.entries(want.tensors)) {
          expect(path.basename(ckpt.info(name).file)).toBe(want.weight_map![name]);
          expect(hex(await ckpt.read(name))).toBe(t.hex);
        }
      } finally {
        await ckpt.close();
      }
    }
    const single = await openCheckpoint(path.join(FIXTURES, 'single'));
    expect(new Set(single.names)).toEqual(new Set(Object.keys(expected.files.single.tensors)));
    await single.close();
  });

  it('reject with the same typed errors: unknown tensor, wrong target size, read after close, missing files, corrupt headers', async () => {
    const f = await openSafetensors(path.join(FIXTURES, 'no_metadata.safetensors'));
    await expectRejection(f.read('nope'), 'ERR_NOT_FOUND', /nope/, /no_metadata\.safetensors/);
    await expectRejection(f.readInto('only', new Uint8Array(3)), 'ERR_SHAPE', /"only" has 12 bytes but the target holds 3/);
    await f.close();
    await expectRejection(f.read('only'), 'ERR_IO', /read\("only"\) after close/);
    await expectRejection(f.readInto('only', new Uint8Array(12)), 'ERR_IO', /readInto\("only"\) after close/);
    await f.close(); // twice is harmless
    await expectRejection(openSafetensors(path.join(tmp, 'missing.safetensors')), 'ERR_NOT_FOUND', /missing\.safetensors/);
    await expectRejection(openCheckpoint(tmp), 'ERR_NOT_FOUND', /model\.safetensors/);
    await expectRejection(openCheckpoint(path.join(tmp, 'nowhere')), 'ERR_NOT_FOUND', /nowhere/);
    const truncatedHeader = rawFile('async-past-eof.safetensors', { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4), { headerLength: 4096n });
    await expectRejection(openSafetensors(truncatedHeader), 'ERR_FORMAT', /past the end of the file/);
    const short = rawFile('async-offsets.safetensors', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(4));
    const sync = (() => { try { openSafetensorsSync(short); } catch (e) { return e as TunekitError; } })();
    const asyncErr = await expectRejection(openSafetensors(short), 'ERR_FORMAT');
    expect(asyncErr.message).toBe(sync!.message);
  });

  it('write byte-identical files and shards to the blocking writer, atomically, and validate the same way', async () => {
    const want = expected.files.sharded;
    const dir = path.join(tmp, 'async-sharded');
    const files = await writeShardedSafetensors(dir, tensorsOf(want), { maxShardSize: 1500, metadata: { format: 'pt' } });
    expect(files).toEqual(want.files);
    const syncDir = path.join(tmp, 'sync-sharded');
    writeShardedSafetensorsSync(syncDir, tensorsOf(want), { maxShardSize: 1500, metadata: { format: 'pt' } });
    for (const f of files) expect(fs.readFileSync(path.join(dir, f)).equals(fs.readFileSync(path.join(syncDir, f))), f).toBe(true);
    const out = path.join(tmp, 'async-dtypes.safetensors');
    await writeSafetensors(out, tensorsOf(expected.files['dtypes.safetensors']).reverse(), { format: 'pt' });
    expect(fs.readFileSync(out).equals(fs.readFileSync(path.join(FIXTURES, 'dtypes.safetensors')))).toBe(true);
    expect(fs.readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);
    const bad = path.join(tmp, 'async-bad.safetensors');
    await expectRejection(writeSafetensors(bad, [{ name: 'x', dtype: 'F32', shape: [2], bytes: new Uint8Array(7) }]), 'ERR_SHAPE', /needs 8 bytes but received 7/);
    await expectRejection(writeSafetensors(path.join(tmp, 'no-such-dir', 'y.safetensors'), []), 'ERR_NOT_FOUND', /y\.safetensors/);
    await expectRejection(writeShardedSafetensors(dir, [], { maxShardSize: 0 }), 'ERR_VALUE', /maxShardSize/);
    expect(fs.existsSync(bad)).toBe(false);
  });
});

/** Builds a file from a raw header object and data, bypassing the writer's checks. */
function rawFile(name: string, header: unknown, data: Uint8Array, opts: { headerLength?: bigint; pad?: boolean } = {}): string {
  let json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  if (opts.pad !== false && json.length % 8) json = Buffer.concat([json, Buffer.alloc(8 - (json.length % 8), 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.headerLength ?? BigInt(json.length));
  const file = path.join(tmp, name);
  fs.writeFileSync(file, Buffer.concat([len, json, data]));
  return file;
}

describe('rejecting corrupt files', () => {
  const good = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'I8', shape: [4], data_offsets: [8, 12] } };
  const data = new Uint8Array(12);

  it('accepts the uncorrupted control file', () => {
    const f = openSafetensorsSync(rawFile('control.safetensors', good, data));
    expect([...f.names]).toEqual(['a', 'b']);
    f.close();
  });

  it('file shorter than the length prefix', () => {
    const file = path.join(tmp, 'tiny.safetensors');
    fs.writeFileSync(file, Buffer.from([1, 2, 3]));
    expectTunekitError(() => openSafetensorsSync(file), 'ERR_FORMAT', /tiny\.safetensors/, /truncated/);
  });

  it('header length past EOF', () => {
    expectTunekitError(() => openSafetensorsSync(rawFile('eof.safetensors', good, data, { headerLength: 4096n })), 'ERR_FORMAT', /eof\.safetensors/, /past the end/);
  });

  it('absurd header length', () => {
    expectTunekitError(() => openSafetensorsSync(rawFile('absurd.safetensors', good, data, { headerLength: 1n << 60n })), 'ERR_FORMAT', /absurd/);
  });

  it('invalid JSON and a non-object header', () => {
    expectTunekitError(() => openSafetensorsSync(rawFile('json.safetensors', '{"a": {"dtype": ', data)), 'ERR_FORMAT', /json\.safetensors/, /not valid JSON/);
    expectTunekitError(() => openSafetensorsSync(rawFile('arr.safetensors', '[1, 2]', new Uint8Array(0))), 'ERR_FORMAT', /must be a JSON object but is an array/);
    expectTunekitError(() => openSafetensorsSync(rawFile('utf8.safetensors', Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1'), new Uint8Array(0))), 'ERR_FORMAT');
  });

  it('unknown dtype, naming the tensor', () => {
    expectTunekitError(() => openSafetensorsSync(rawFile('dtype.safetensors', { ...good, b: { ...good.b, dtype: 'Q4' } }, data)), 'ERR_FORMAT', /"b"/, /unknown dtype "Q4"/);
  });

  it('shape product not matching the byte length', () => {
    expectTunekitError(() => openSafetensorsSync(rawFile('shape.safetensors', { ...good, a: { ...good.a, shape: [3] } }, data)), 'ERR_FORMAT', /"a"/, /needs 12 bytes/);
    expectTunekitError(() => openSafetensorsSync(rawFile('shape2.safetensors', { ...good, a: { ...good.a, shape: [2.5] } }, data)), 'ERR_FORMAT', /"a"/, /shape\[0\]/);
  });

  it('offsets out of range, overlapping, with a gap, or not covering the data', () => {
    expectTunekitError(() => openSafetensorsSync(rawFile('range.safetensors', { ...good, b: { ...good.b, data_offsets: [8, 12] } }, new Uint8Array(10))), 'ERR_FORMAT', /"b"/, /past the end/);
    expectTunekitError(() => openSafetensorsSync(rawFile('overlap.safetensors', { a: good.a, b: { dtype: 'I8', shape: [4], data_offsets: [4, 8] } }, new Uint8Array(8))), 'ERR_FORMAT', /overlap/);
    expectTunekitError(() => openSafetensorsSync(rawFile('gap.safetensors', { a: good.a, b: { dtype: 'I8', shape: [4], data_offsets: [10, 14] } }, new Uint8Array(14))), 'ERR_FORMAT', /contiguous/);
    expectTunekitError(() => openSafetensorsSync(rawFile('extra.safetensors', good, new Uint8Array(16))), 'ERR_FORMAT', /cover 12 bytes/, /trailing bytes/);
    expectTunekitError(() => openSafetensorsSync(rawFile('reversed.safetensors', { a: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, data)), 'ERR_FORMAT', /data_offsets/);
  });

  it('truncated real file', () => {
    const src = fs.readFileSync(path.join(FIXTURES, 'dtypes.safetensors'));
    const file = path.join(tmp, 'cut.safetensors');
    fs.writeFileSync(file, src.subarray(0, src.length - 5));
    expectTunekitError(() => openSafetensorsSync(file), 'ERR_FORMAT', /cut\.safetensors/, /truncated/);
  });

  it('bad __metadata__', () => {
    expectTunekitError(() => openSafetensorsSync(rawFile('meta.safetensors', { __metadata__: { n: 1 }, ...good }, data)), 'ERR_FORMAT', /__metadata__/);
  });

  it('an index pointing at a missing tensor or shard', () => {
    const dir = path.join(tmp, 'badindex');
    fs.mkdirSync(dir);
    fs.copyFileSync(rawFile('shard.safetensors', good, data), path.join(dir, 's1.safetensors'));
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 's1.safetensors', c: 's1.safetensors' } }));
    expectTunekitError(() => openCheckpointSync(dir), 'ERR_FORMAT', /"c"/, /s1\.safetensors/);
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 's2.safetensors' } }));
    expectTunekitError(() => openCheckpointSync(dir), 'ERR_NOT_FOUND', /s2\.safetensors/);
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{"weight_map": 3}');
    expectTunekitError(() => openCheckpointSync(dir), 'ERR_FORMAT', /weight_map/);
  });
});

describe('our writer -> Python reader', () => {
  const exportDir = process.env.TUNEKIT_SAFETENSORS_EXPORT;
  const manifest: Record<string, { tensors: Record<string, { dtype: string; shape: number[]; hex: string }>; metadata?: Record<string, string>; sharded?: boolean }> = {
    'dtypes.safetensors': { tensors: {}, metadata: { format: 'pt', 'ünï': 'cödé ✓' } },
    sharded: { tensors: {}, sharded: true },
  };

  it.runIf(exportDir)('exports files for scripts/fixtures/make_safetensors_fixtures.py', () => {
    const all = tensorsOf(expected.files['dtypes.safetensors']);
    writeSafetensorsSync(path.join(exportDir!, 'dtypes.safetensors'), all, manifest['dtypes.safetensors'].metadata);
    writeShardedSafetensorsSync(path.join(exportDir!, 'sharded'), all, { maxShardSize: 256 });
    for (const t of all) {
      const d = { dtype: t.dtype, shape: t.shape, hex: hex(t.bytes) };
      manifest['dtypes.safetensors'].tensors[t.name] = d;
      manifest.sharded.tensors[t.name] = d;
    }
    fs.writeFileSync(path.join(exportDir!, 'manifest.json'), JSON.stringify(manifest));
  });

  it.skipIf(exportDir)('Python read every file our writer produced (recorded by the fixture script)', () => {
    const results = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'python_reads_ours.json'), 'utf8'));
    expect(Object.keys(results).sort()).toEqual(Object.keys(manifest).sort());
    for (const [file, r] of Object.entries(results as Record<string, { ok: boolean; problems: string[] }>)) {
      expect(r.problems, file).toEqual([]);
      expect(r.ok, file).toBe(true);
    }
  });
});
