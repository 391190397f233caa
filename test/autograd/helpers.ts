/** Shared helpers of the autograd tests: the op fixtures, allclose with error reports. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { expect } from 'vitest';
import type { Tolerance } from '../tolerances.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const OPS_FIXTURE = path.join(here, '..', 'fixtures', 'ops', 'ops.json');

export interface FixtureInput {
  name: string;
  dtype: 'f32' | 'i32';
  shape: number[];
  grad: boolean;
  /** base64 little-endian f32 (dtype f32) or a plain list (i32) */
  data: string | number[];
}

export interface FixtureCase {
  name: string;
  op: string;
  kind: string;
  params: Record<string, any>;
  inputs: FixtureInput[];
  out: { shape: number[]; data: string };
  wSeed: number;
  grads: Record<string, string>;
}

export interface OpsFixture {
  versions: Record<string, string>;
  cases: FixtureCase[];
}

export function loadOpsFixture(): OpsFixture {
  return JSON.parse(readFileSync(OPS_FIXTURE, 'utf8')) as OpsFixture;
}

/** base64 little-endian f32 -> Float32Array (copied, so alignment does not matter). */
export function f32FromBase64(s: string): Float32Array {
  const buf = Buffer.from(s, 'base64');
  const out = new Float32Array(buf.byteLength / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

/** The loss weights of the fixtures: w_i = ((37 i + 11 k) mod 41 - 20.5) / 16 (exact in f32). */
export function lossWeights(n: number, k: number): Float32Array {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = ((((37 * i + 11 * k) % 41) + 41) % 41 - 20.5) / 16;
  return w;
}

export interface ErrorReport {
  /** max |got - want| */
  maxAbs: number;
  /** max |got - want| / max(|want|, tiny) over elements with |want| > atol */
  maxRel: number;
  /** max |got - want| / (atol + rtol |want|): <= 1 passes */
  worst: number;
  worstAt: number;
}

export function errorReport(got: ArrayLike<number>, want: ArrayLike<number>, tol: Tolerance): ErrorReport {
  let maxAbs = 0, maxRel = 0, worst = 0, worstAt = -1;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    const d = Math.abs(g - w);
    if (!Number.isFinite(g) || Number.isNaN(d)) return { maxAbs: Infinity, maxRel: Infinity, worst: Infinity, worstAt: i };
    maxAbs = Math.max(maxAbs, d);
    if (Math.abs(w) > tol.atol && Math.abs(w) > 0) maxRel = Math.max(maxRel, d / Math.abs(w));
    const bound = tol.atol + tol.rtol * Math.abs(w);
    const ratio = bound === 0 ? (d === 0 ? 0 : Infinity) : d / bound;
    if (ratio > worst) { worst = ratio; worstAt = i; }
  }
  return { maxAbs, maxRel, worst, worstAt };
}

/** Collected error reports, printed at the end of a file when TUNEKIT_REPORT_ERRORS is set. */
export const reports: { what: string; r: ErrorReport }[] = [];

export function printReports(title: string): void {
  if (!process.env.TUNEKIT_REPORT_ERRORS) return;
  const lines = reports.map(({ what, r }) => `${what.padEnd(72)} maxAbs ${r.maxAbs.toExponential(2)}  maxRel ${r.maxRel.toExponential(2)}  used ${(r.worst * 100).toFixed(1)}%`);
  console.log(`${title}\n${lines.join('\n')}`);
}

/** Asserts allclose(got, want, tol) with a message that names the worst element. */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: Tolerance, what: string): ErrorReport {
  expect(got.length, `${what}: element count`).toBe(want.length);
  const r = errorReport(got, want, tol);
  reports.push({ what, r });
  if (r.worst > 1) {
    const i = r.worstAt;
    expect.fail(`${what}: element ${i} is ${got[i]} but the reference is ${want[i]} (|diff| ${Math.abs(got[i]! - want[i]!).toExponential(3)} > atol ${tol.atol} + rtol ${tol.rtol} * |ref|); max abs error ${r.maxAbs.toExponential(3)}`);
  }
  return r;
}
