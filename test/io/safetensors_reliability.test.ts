/**
 * Hostile inputs to the safetensors reader and writer (issue 18): non-regular files never
 * block, sizes are bounded before allocation, and the verdicts the issue names match the Python
 * `safetensors` library (recorded in test/fixtures/safetensors/fuzz.json by
 * scripts/fixtures/make_safetensors_fuzz.py; quoted here beside each case).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { openSafetensors, openCheckpoint, openSafetensorsSync, openCheckpointSync, writeSafetensorsSync, decodeValues, type RawTensor } from '../../lib/io/safetensors.js';
import { TunekitError } from '../../lib/errors.js';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-st-rel-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function errorOf(fn: () => unknown): TunekitError {
  try {
    fn();
  } catch (e) {
    expect(e, String(e)).toBeInstanceOf(TunekitError);
    return e as TunekitError;
  }
  throw new Error('expected a TunekitError, but the call returned');
}

/** A file from raw header text (not JSON-encoded by us: the bytes are exactly what is tested). */
function fileWithHeader(name: string, header: string | Uint8Array, data: Uint8Array = new Uint8Array(0)): string {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const file = path.join(tmp, name);
  fs.writeFileSync(file, Buffer.concat([len, h, data]));
  return file;
}

const U32_ENTRY = '"a":{"dtype":"U32","shape":[2],"data_offsets":[0,8]}';
const U32_DATA = new Uint8Array(new Uint32Array([7, 0xffffffff]).buffer);

describe('verdicts issue 18 names, as the Python library gives them', () => {
  it('reads U32 (and decodes it), and the other dtypes the reference accepts', () => {
    // Python: safe_open(...).get_tensor("a") -> tensor([7, 4294967295], dtype=torch.uint32)
    const f = openSafetensorsSync(fileWithHeader('u32.safetensors', `{${U32_ENTRY}}`, U32_DATA));
    const t = f.readTensor('a');
    expect([t.dtype, t.shape]).toEqual(['U32', [2]]);
    expect(decodeValues(t)).toEqual([7, 0xffffffff]);
    f.close();
    for (const [dtype, shape, bytes] of [['U16', [4], 8], ['U64', [1], 8], ['C64', [1], 8], ['F8_E8M0', [8], 8],
      ['F8_E4M3FNUZ', [8], 8], ['F8_E5M2FNUZ', [8], 8], ['F6_E2M3', [4], 3], ['F6_E3M2', [4], 3], ['F4', [4], 2]] as const) {
      const file = fileWithHeader(`${dtype}.safetensors`, `{"x":{"dtype":"${dtype}","shape":${JSON.stringify(shape)},"data_offsets":[0,${bytes}]}}`, new Uint8Array(bytes));
      const g = openSafetensorsSync(file);
      expect(g.readTensor('x').bytes.length, dtype).toBe(bytes);
      g.close();
    }
  });

  it('accepts leading JSON whitespace before "{" and "__metadata__": null', () => {
    const ws = openSafetensorsSync(fileWithHeader('ws.safetensors', ` \n\t\r{${U32_ENTRY}}`, U32_DATA));
    expect([...ws.names]).toEqual(['a']);
    ws.close();
    const meta = openSafetensorsSync(fileWithHeader('metanull.safetensors', `{"__metadata__":null,${U32_ENTRY}}`, U32_DATA));
    expect(meta.metadata).toEqual({});
    meta.close();
  });

  it('refuses a BOM, a duplicate __metadata__ and lone surrogates with ERR_FORMAT', () => {
    // Python: "invalid JSON in header: expected value at line 1 column 1"
    const bom = errorOf(() => openSafetensorsSync(fileWithHeader('bom.safetensors', `\ufeff{${U32_ENTRY}}`, U32_DATA)));
    expect(bom.code).toBe('ERR_FORMAT');
    expect(bom.message).toMatch(/bom\.safetensors.*byte order mark/);
    // Python: "duplicate field `__metadata__`"
    const dup = errorOf(() => openSafetensorsSync(fileWithHeader('dupmeta.safetensors', `{"__metadata__":{},"__metadata__":{},${U32_ENTRY}}`, U32_DATA)));
    expect([dup.code, dup.message]).toEqual(['ERR_FORMAT', expect.stringMatching(/"__metadata__" appears twice/)]);
    // Python: "lone leading surrogate in hex escape" / "unexpected end of hex escape"
    for (const name of ['\\ud800', '\\udc00', '\\ud800x', '\\ud800\\ud800']) {
      const e = errorOf(() => openSafetensorsSync(fileWithHeader('sur.safetensors', `{"${name}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`)));
      expect([e.code, e.message], name).toEqual(['ERR_FORMAT', expect.stringMatching(/surrogate/)]);
    }
    // A well-formed pair is a valid name.
    const pair = openSafetensorsSync(fileWithHeader('pair.safetensors', '{"\\ud83d\\ude00":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'));
    expect([...pair.names]).toEqual(['😀']);
    pair.close();
  });

  it('keeps metadata keys such as "__proto__" as data', () => {
    const f = openSafetensorsSync(fileWithHeader('proto.safetensors', '{"__metadata__":{"__proto__":"x","constructor":"y"}}'));
    expect(Object.keys(f.metadata)).toEqual(['__proto__', 'constructor']);
    expect(f.metadata.__proto__).toBe('x');
    f.close();
  });
});

/** A child process that, after `ms`, opens `fifo` for writing and writes 16 bytes: it unblocks a reader stuck on the FIFO, so a regression fails the time bound instead of hanging the run. */
function unblockLater(fifo: string, ms: number): ChildProcess {
  const code = `setTimeout(() => { const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(fifo)}, 'w'); fs.writeSync(fd, Buffer.alloc(16)); fs.closeSync(fd); }, ${ms});`;
  return spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
}

describe('only regular files are read', () => {
  const hasMkfifo = process.platform !== 'win32';

  it.runIf(hasMkfifo)('a FIFO as model.safetensors fails at once with ERR_IO, never blocks', () => {
    const dir = path.join(tmp, 'fifo-model');
    fs.mkdirSync(dir);
    const fifo = path.join(dir, 'model.safetensors');
    execFileSync('mkfifo', [fifo]);
    for (const open of [() => openSafetensorsSync(fifo), () => openCheckpointSync(dir), () => openCheckpointSync(fifo)]) {
      const helper = unblockLater(fifo, 3000);
      try {
        const started = performance.now();
        const e = errorOf(open);
        const ms = performance.now() - started;
        expect(ms, 'answered without waiting for a writer').toBeLessThan(1500);
        expect(e.code).toBe('ERR_IO');
        expect(e.message).toMatch(/model\.safetensors/);
        expect(e.message).toMatch(/FIFO/);
      } finally {
        helper.kill();
      }
    }
  });

  it.runIf(hasMkfifo)('a FIFO as the sharded index fails at once', () => {
    const dir = path.join(tmp, 'fifo-index');
    fs.mkdirSync(dir);
    const fifo = path.join(dir, 'model.safetensors.index.json');
    execFileSync('mkfifo', [fifo]);
    const helper = unblockLater(fifo, 3000);
    try {
      const started = performance.now();
      const e = errorOf(() => openCheckpointSync(dir));
      expect(performance.now() - started).toBeLessThan(1500);
      expect([e.code, e.message]).toEqual(['ERR_IO', expect.stringMatching(/index\.json.*FIFO/)]);
    } finally {
      helper.kill();
    }
  });

  it.runIf(hasMkfifo)('the fs/promises forms refuse a FIFO at once too (model file and index)', async () => {
    const dir = path.join(tmp, 'fifo-async');
    fs.mkdirSync(dir);
    const fifo = path.join(dir, 'model.safetensors');
    execFileSync('mkfifo', [fifo]);
    const index = path.join(tmp, 'fifo-async-index');
    fs.mkdirSync(index);
    execFileSync('mkfifo', [path.join(index, 'model.safetensors.index.json')]);
    for (const [open, pipe] of [[() => openSafetensors(fifo), fifo], [() => openCheckpoint(dir), fifo], [() => openCheckpoint(index), path.join(index, 'model.safetensors.index.json')]] as const) {
      const helper = unblockLater(pipe, 3000);
      try {
        const started = performance.now();
        const e = await open().then(() => null, (err: unknown) => err as TunekitError);
        expect(performance.now() - started, 'answered without waiting for a writer').toBeLessThan(1500);
        expect(e).toBeInstanceOf(TunekitError);
        expect([e!.code, e!.message]).toEqual(['ERR_IO', expect.stringMatching(/FIFO/)]);
      } finally {
        helper.kill();
      }
    }
  });

  it('a directory and a device are refused by kind', () => {
    const dir = path.join(tmp, 'a-dir.safetensors');
    fs.mkdirSync(dir);
    const d = errorOf(() => openSafetensorsSync(dir));
    expect([d.code, d.message]).toEqual(['ERR_IO', expect.stringMatching(/a-dir\.safetensors.*a directory/)]);
    if (fs.existsSync('/dev/zero')) {
      const z = errorOf(() => openSafetensorsSync('/dev/zero'));
      expect([z.code, z.message]).toEqual(['ERR_IO', expect.stringMatching(/\/dev\/zero.*character device/)]);
      const c = errorOf(() => openCheckpointSync('/dev/zero'));
      expect([c.code, c.message]).toEqual(['ERR_IO', expect.stringMatching(/character device/)]);
    }
  });
});

describe('bounded memory', () => {
  it('refuses header lengths above 100 MB or past the end of the file before allocating', () => {
    for (const [length, pattern] of [[1n << 60n, /absurd/], [(1n << 64n) - 1n, /absurd/], [100_000_001n, /absurd/], [99_999_999n, /past the end of the file/]] as const) {
      const file = path.join(tmp, 'len.safetensors');
      const buf = Buffer.alloc(64, 0x20);
      buf.writeBigUInt64LE(length);
      fs.writeFileSync(file, buf);
      const before = process.memoryUsage().arrayBuffers;
      const e = errorOf(() => openSafetensorsSync(file));
      expect([e.code, e.message]).toEqual(['ERR_FORMAT', expect.stringMatching(pattern)]);
      // Nothing near the announced size was allocated.
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(10_000_000);
    }
  });

  it('reads a header with 20,000 tensors and deep-but-legal nesting quickly', () => {
    const entries: string[] = [];
    for (let i = 0; i < 20_000; i++) entries.push(`"t${i}":{"dtype":"U8","shape":[1],"data_offsets":[${i},${i + 1}],"x":${'['.repeat(125)}${']'.repeat(125)}}`);
    const file = fileWithHeader('many.safetensors', `{${entries.join(',')}}`, new Uint8Array(20_000));
    const started = performance.now();
    const f = openSafetensorsSync(file);
    expect(f.names.length).toBe(20_000);
    expect(f.info('t19999').dataOffsets).toEqual([19_999, 20_000]);
    f.close();
    expect(performance.now() - started).toBeLessThan(5000);
  });
});

describe('the writer never writes what the reference refuses', () => {
  const file = () => path.join(tmp, 'w.safetensors');
  const u8: RawTensor = { name: 'x', dtype: 'U8', shape: [2], bytes: new Uint8Array(2) };

  it('refuses lone-surrogate names and metadata', () => {
    expect(errorOf(() => writeSafetensorsSync(file(), [{ ...u8, name: 'a\ud800' }])).message).toMatch(/lone surrogate/);
    expect(errorOf(() => writeSafetensorsSync(file(), [u8], { k: '\udc00' })).message).toMatch(/lone surrogate/);
    expect(errorOf(() => writeSafetensorsSync(file(), [u8], { '\ud800': 'v' })).code).toBe('ERR_VALUE');
    expect(fs.existsSync(file())).toBe(false);
  });

  it('writes the new dtypes, and sub-byte dtypes only in whole bytes', () => {
    const tensors: RawTensor[] = [
      { name: 'u32', dtype: 'U32', shape: [2], bytes: U32_DATA },
      { name: 'f4', dtype: 'F4', shape: [2, 2], bytes: new Uint8Array([0x12, 0x34]) },
      { name: 'f6', dtype: 'F6_E3M2', shape: [4], bytes: new Uint8Array([1, 2, 3]) },
      { name: 'u64', dtype: 'U64', shape: [1], bytes: new Uint8Array(new BigUint64Array([2n ** 64n - 1n]).buffer) },
    ];
    writeSafetensorsSync(file(), tensors);
    const f = openSafetensorsSync(file());
    for (const t of tensors) expect(f.readTensor(t.name)).toEqual(t);
    expect(decodeValues(f.readTensor('u64'))).toEqual([2n ** 64n - 1n]);
    f.close();
    const odd = errorOf(() => writeSafetensorsSync(file(), [{ name: 'f4', dtype: 'F4', shape: [3], bytes: new Uint8Array(2) }]));
    expect([odd.code, odd.message]).toEqual(['ERR_SHAPE', expect.stringMatching(/whole bytes/)]);
  });
});

describe('dtypes read but not computed with', () => {
  it('converting one to a tensor says the file is valid and its raw bytes are readable', async () => {
    const { tensorFromRaw } = await import('../../lib/models/weights.js');
    const e = errorOf(() => tensorFromRaw({ name: 'ids', dtype: 'U32', shape: [2], bytes: U32_DATA }));
    expect([e.code, e.message]).toEqual(['ERR_DTYPE', expect.stringMatching(/'ids' has dtype U32, which tunekit cannot compute with \(it converts F32, .*\); the file is valid and readTensor\(\) returns/)]);
  });
});
