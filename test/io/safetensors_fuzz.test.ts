/**
 * The seeded safetensors fuzz corpus: several hundred mutated files, each with the verdict of
 * the Python `safetensors` library (the reference), recorded by
 * scripts/fixtures/make_safetensors_fuzz.py into test/fixtures/safetensors/fuzz.json.
 *
 * Our reader must give the same verdict on every file: when the reference accepts, the same
 * tensor names, dtypes, shapes, bytes (sha256) and metadata; when it refuses, a TunekitError
 * with code ERR_FORMAT naming the file. Nothing may throw anything else, and each file is
 * answered within a time bound. Files that the reference accepts and tunekit deliberately
 * refuses are the DOCUMENTED_EXCEPTIONS below (also in docs/reliability.md); no case is skipped.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { openSafetensors, openSafetensorsSync, writeSafetensorsSync, decodeValues, DTYPE_BITS, type RawTensor, type SafetensorsDtype } from '../../lib/io/safetensors.js';
import { TunekitError } from '../../lib/errors.js';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'safetensors', 'fuzz.json');

/** [dtype, shape, first 16 hex digits of sha256(bytes)] */
type TensorDigest = [string, number[], string];
interface Accepted {
  ok: true;
  tensors: Record<string, TensorDigest>;
  /** Names of the seed's tensors that this case no longer has (cases only). */
  removed?: string[];
  /** Present on a case only when it differs from its seed's. */
  metadata?: Record<string, string>;
  features?: string[];
}
interface Rejected { ok: false; error: string }
interface Seed { name: string; base64: string; written_by: 'python' | 'hand'; expect: Accepted & { metadata: Record<string, string> }; values?: Record<string, Array<number | string | boolean>> }
interface Case { id: number; seed: number; what: string; splices: Array<[number, number, string]>; expect: Accepted | Rejected }
interface Corpus { reference: { safetensors: string }; rng_seed: number; seeds: Seed[]; cases: Case[]; counts: { cases: number; accepted: number; rejected: number } }

/**
 * Files the reference accepts and tunekit refuses on purpose, by the feature the fixture
 * script tags them with. Each must be refused with ERR_FORMAT and a message matching `message`.
 */
const DOCUMENTED_EXCEPTIONS: Record<string, { why: string; message: RegExp }> = {
  'duplicate-tensor-name': {
    why: 'the reference silently keeps the last entry of a name given twice; which tensor is meant is ambiguous, and tunekit refuses duplicate keys in every JSON it reads',
    message: /tensor name "[^"]*" appears twice/,
  },
  'duplicate-metadata-key': {
    why: 'the reference silently keeps the last value of a __metadata__ key given twice; refused for the same reason',
    message: /__metadata__ key "[^"]*" appears twice/,
  },
  'dimension-above-2^53': {
    why: 'a shape dimension above 2^53 - 1 (possible in a zero-element tensor) cannot be held exactly in a JavaScript number; the shape would be silently wrong',
    message: /dimension .* above 2\^53 - 1/,
  },
};

/** A generous bound per file (open, validate, read every tensor) on a loaded two-core machine. */
const CASE_TIME_LIMIT_MS = 2000;

const corpus: Corpus = JSON.parse(fs.readFileSync(FIXTURE, 'utf8'));
const seedBytes = corpus.seeds.map((s) => new Uint8Array(Buffer.from(s.base64, 'base64')));

/** The mutated file: the seed's bytes with the case's splices applied in order. */
function replay(c: Case): Uint8Array {
  let buf = Buffer.from(seedBytes[c.seed]);
  for (const [offset, remove, insert] of c.splices) {
    buf = Buffer.concat([buf.subarray(0, offset), Buffer.from(insert, 'base64'), buf.subarray(offset + remove)]);
  }
  return new Uint8Array(buf);
}

const digest = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);

/** What the reference reads from a case: its seed's tensors and metadata with the case's changes. */
function expectedOf(c: Case & { expect: Accepted }): { tensors: Record<string, TensorDigest>; metadata: Record<string, string> } {
  const seed = corpus.seeds[c.seed].expect;
  const tensors: Record<string, TensorDigest> = {};
  for (const [k, v] of Object.entries(seed.tensors)) if (!c.expect.removed?.includes(k)) tensors[k] = v;
  Object.assign(tensors, c.expect.tensors);
  return { tensors, metadata: c.expect.metadata ?? seed.metadata };
}

type Outcome = { ok: true; tensors: Record<string, TensorDigest>; metadata: Record<string, string> } | { ok: false; error: unknown };

/** Opens a file with our reader and reads every tensor, as a loader would. */
function readWithTunekit(file: string): Outcome {
  let reader;
  try {
    reader = openSafetensorsSync(file);
  } catch (error) {
    return { ok: false, error };
  }
  try {
    const tensors: Record<string, TensorDigest> = {};
    for (const name of reader.names) {
      const t = reader.readTensor(name);
      tensors[name] = [t.dtype, t.shape, digest(t.bytes)];
    }
    return { ok: true, tensors, metadata: { ...reader.metadata } };
  } catch (error) {
    return { ok: false, error };
  } finally {
    reader.close();
  }
}

/** {@link readWithTunekit} through the fs/promises reader. */
async function readWithTunekitAsync(file: string): Promise<Outcome> {
  let reader;
  try {
    reader = await openSafetensors(file);
  } catch (error) {
    return { ok: false, error };
  }
  try {
    const tensors: Record<string, TensorDigest> = {};
    for (const name of reader.names) {
      const t = await reader.readTensor(name);
      tensors[name] = [t.dtype, t.shape, digest(t.bytes)];
    }
    return { ok: true, tensors, metadata: { ...reader.metadata } };
  } catch (error) {
    return { ok: false, error };
  } finally {
    await reader.close();
  }
}

const show = (v: unknown) => JSON.stringify(v)?.slice(0, 300);

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-st-fuzz-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

describe('safetensors fuzz corpus against the Python reference', () => {
  it('is the corpus the fixture script wrote: hundreds of cases, both verdicts', () => {
    expect(corpus.cases.length).toBe(corpus.counts.cases);
    expect(corpus.cases.length).toBeGreaterThanOrEqual(500);
    expect(corpus.counts.accepted).toBe(corpus.cases.filter((c) => c.expect.ok).length);
    expect(corpus.counts.accepted).toBeGreaterThanOrEqual(100);
    expect(corpus.counts.rejected).toBeGreaterThanOrEqual(300);
  });

  it('reads every seed as the reference does', () => {
    for (const [i, seed] of corpus.seeds.entries()) {
      const file = path.join(tmp, `seed-${i}.safetensors`);
      fs.writeFileSync(file, seedBytes[i]);
      const got = readWithTunekit(file);
      expect(got.ok ? '' : show((got as { error: unknown }).error), seed.name).toBe('');
      if (!got.ok) continue;
      expect(got.tensors, seed.name).toEqual(seed.expect.tensors);
      expect(got.metadata, seed.name).toEqual(seed.expect.metadata);
    }
  });

  it('decodes the values of every numeric dtype as torch does (U16, U32, U64, the FP8 variants, ...)', () => {
    const seed = corpus.seeds.find((s) => s.name === 'torch_all_dtypes')!;
    const file = path.join(tmp, 'values.safetensors');
    fs.writeFileSync(file, seedBytes[corpus.seeds.indexOf(seed)]);
    const f = openSafetensorsSync(file);
    try {
      expect(Object.keys(seed.values!).length).toBeGreaterThanOrEqual(18);
      for (const [name, want] of Object.entries(seed.values!)) {
        const t = f.readTensor(name);
        const got = decodeValues(t);
        const wantValues = want.map((v) => {
          if (t.dtype === 'U64' || t.dtype === 'I64') return BigInt(v as number | string);
          return v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === '-0' ? -0 : v;
        });
        expect(got, `${name} (${t.dtype})`).toStrictEqual(wantValues);
      }
      // Sub-byte and complex dtypes are read as raw bytes only; decodeValues says so.
      for (const name of ['f4x2', 'c64']) {
        expect(() => decodeValues(f.readTensor(name))).toThrow(/raw bytes/);
      }
    } finally {
      f.close();
    }
  });

  it('writes the Python-written seeds back byte for byte (every dtype, Python tensor order)', () => {
    for (const [i, seed] of corpus.seeds.entries()) {
      if (seed.written_by !== 'python') continue;
      const src = path.join(tmp, `py-${i}.safetensors`);
      fs.writeFileSync(src, seedBytes[i]);
      const f = openSafetensorsSync(src);
      const tensors: RawTensor[] = [...f.names].reverse().map((n) => f.readTensor(n));
      const metadata = { ...f.metadata };
      f.close();
      const out = path.join(tmp, `ours-${i}.safetensors`);
      writeSafetensorsSync(out, tensors, Object.keys(metadata).length ? metadata : undefined);
      expect(Buffer.compare(fs.readFileSync(out), Buffer.from(seedBytes[i])), seed.name).toBe(0);
    }
    // The seeds cover every dtype of the format.
    const dtypes = new Set(corpus.seeds.flatMap((s) => Object.values(s.expect.tensors).map((t) => t[0])));
    for (const d of Object.keys(DTYPE_BITS) as SafetensorsDtype[]) expect(dtypes.has(d), d).toBe(true);
  });

  it('gives the reference verdict on every mutated file, with typed errors and within the time bound', () => {
    const file = path.join(tmp, 'case.safetensors');
    const mismatches: string[] = [];
    const exceptionsSeen = new Set<string>();
    let slowest = 0;
    for (const c of corpus.cases) {
      fs.writeFileSync(file, replay(c));
      const started = performance.now();
      const got = readWithTunekit(file);
      const ms = performance.now() - started;
      slowest = Math.max(slowest, ms);
      const where = `case ${c.id} (${c.what})`;
      if (ms > CASE_TIME_LIMIT_MS) mismatches.push(`${where}: took ${ms.toFixed(0)} ms`);
      if (!got.ok && !(got.error instanceof TunekitError)) {
        mismatches.push(`${where}: threw a raw ${(got.error as Error)?.constructor?.name}: ${(got.error as Error)?.message}`);
        continue;
      }
      const documented = c.expect.ok ? (c.expect.features ?? []).filter((f) => f in DOCUMENTED_EXCEPTIONS) : [];
      if (!c.expect.ok || documented.length > 0) {
        if (got.ok) {
          mismatches.push(`${where}: accepted, but ${c.expect.ok ? `documented exception ${documented.join(', ')}` : `the reference refuses it (${c.expect.error})`}`);
          continue;
        }
        const err = (got as { error: TunekitError }).error;
        if (err.code !== 'ERR_FORMAT') mismatches.push(`${where}: code ${err.code}, expected ERR_FORMAT (${err.message})`);
        if (!err.message.includes(file)) mismatches.push(`${where}: message does not name the file: ${err.message}`);
        if (documented.length > 0) {
          if (!documented.some((f) => DOCUMENTED_EXCEPTIONS[f].message.test(err.message))) {
            mismatches.push(`${where}: refused for another reason than ${documented.join(', ')}: ${err.message}`);
          }
          documented.forEach((f) => exceptionsSeen.add(f));
        }
        continue;
      }
      if (!got.ok) {
        mismatches.push(`${where}: refused (${(got as { error: TunekitError }).error.message}), but the reference accepts it`);
        continue;
      }
      const want = expectedOf(c as Case & { expect: Accepted });
      if (show(sortKeys(got.tensors)) !== show(sortKeys(want.tensors))) {
        mismatches.push(`${where}: tensors ${show(sortKeys(got.tensors))} != reference ${show(sortKeys(want.tensors))}`);
      }
      if (show(sortKeys(got.metadata)) !== show(sortKeys(want.metadata))) {
        mismatches.push(`${where}: metadata ${show(got.metadata)} != reference ${show(want.metadata)}`);
      }
    }
    expect(mismatches, `${mismatches.length} of ${corpus.cases.length} cases differ from the reference`).toEqual([]);
    // Each documented exception is exercised by the corpus (else the list would be untested).
    expect([...exceptionsSeen].sort()).toEqual(Object.keys(DOCUMENTED_EXCEPTIONS).sort());
    expect(slowest).toBeLessThan(CASE_TIME_LIMIT_MS);
  });

  it('the fs/promises reader gives the answer of the blocking reader on every case (same tensors, or the same typed error)', async () => {
    const file = path.join(tmp, 'case-async.safetensors');
    const differ: string[] = [];
    const outcome = (o: Outcome) => (o.ok ? show([sortKeys(o.tensors), sortKeys(o.metadata)]) : o.error instanceof TunekitError ? `${o.error.code} ${o.error.message}` : `raw ${String(o.error)}`);
    for (const c of corpus.cases) {
      fs.writeFileSync(file, replay(c));
      const a = outcome(await readWithTunekitAsync(file)), b = outcome(readWithTunekit(file));
      if (a !== b) differ.push(`case ${c.id} (${c.what}): async ${a} / sync ${b}`);
    }
    expect(differ).toEqual([]);
  });
});

function sortKeys<T>(o: Record<string, T>): Array<[string, T]> {
  return Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
