/**
 * The native SVD (one-sided Jacobi, f64 and f32) against LAPACK: singular values from
 * numpy.linalg.svd (gesdd) on random, ill-conditioned, rank-deficient, tall and wide matrices
 * (test/fixtures/svd/svd.json, scripts/fixtures/make_svd_fixtures.py), plus orthonormal factors
 * and reconstruction checked here (vectors are only defined up to sign or rotation).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../lib/tensor/kernels.js';
import { svdF64 } from '../../lib/tensor/linalg.js';
import { tensor } from '../../lib/tensor/creation.js';
import { Tensor } from '../../lib/tensor/tensor.js';

interface Case { name: string; m: number; n: number; a: number[]; s: number[] }
const fixture = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'svd', 'svd.json'), 'utf8')) as { cases: Case[] };

function svdF32(a: Float64Array, m: number, n: number) {
  const k = Math.min(m, n);
  const at = tensor(Float32Array.from(a), [m, n], 'f32');
  const u = Tensor.empty([m, k], 'f32'), s = Tensor.empty([k], 'f32'), vt = Tensor.empty([k, n], 'f32');
  run('svd', { a: at, m, n, u, s, vt, dtype: 'f32', k });
  const out = { u: Float64Array.from(u.data() as Float32Array), s: Float64Array.from(s.data() as Float32Array), vt: Float64Array.from(vt.data() as Float32Array) };
  for (const t of [at, u, s, vt]) t.dispose();
  return out;
}

/** max |X^T X - I| over the k columns of X [rows, k] (byCols) or the k rows of X [k, cols]. */
function orthoError(x: Float64Array, rows: number, cols: number, byCols: boolean): number {
  const k = byCols ? cols : rows, len = byCols ? rows : cols;
  const at = (v: number, i: number) => (byCols ? x[i * cols + v]! : x[v * cols + i]!);
  let worst = 0;
  for (let p = 0; p < k; p++) for (let q = 0; q < k; q++) {
    let d = 0;
    for (let i = 0; i < len; i++) d += at(p, i) * at(q, i);
    worst = Math.max(worst, Math.abs(d - (p === q ? 1 : 0)));
  }
  return worst;
}

describe('native SVD against numpy/LAPACK', () => {
  for (const c of fixture.cases) {
    for (const [dtype, sTol, fTol] of [['f64', 1e-12, 1e-10], ['f32', 2e-6, 2e-5]] as const) {
      it(`${c.name} (${dtype})`, () => {
        const a = Float64Array.from(c.a);
        const k = Math.min(c.m, c.n);
        const { u, s, vt } = dtype === 'f64' ? svdF64(a, c.m, c.n) : svdF32(a, c.m, c.n);
        const smax = c.s[0]!;
        for (let i = 0; i < k; i++) expect(Math.abs(s[i]! - c.s[i]!), `sigma ${i}: ${s[i]} vs LAPACK ${c.s[i]}`).toBeLessThanOrEqual(sTol * smax);
        expect(orthoError(u, c.m, k, true)).toBeLessThan(fTol * 10);
        expect(orthoError(vt, k, c.n, false)).toBeLessThan(fTol * 10);
        let rec = 0;
        for (let i = 0; i < c.m; i++) for (let j = 0; j < c.n; j++) {
          let v = 0;
          for (let p = 0; p < k; p++) v += u[i * k + p]! * s[p]! * vt[p * c.n + j]!;
          rec = Math.max(rec, Math.abs(v - a[i * c.n + j]!));
        }
        expect(rec).toBeLessThanOrEqual(fTol * smax);
      });
    }
  }
  it('keeps the small singular values of a graded matrix to high relative accuracy (f64)', () => {
    const c = fixture.cases.find((x) => x.name.startsWith('ill-conditioned 30x12'))!;
    const { s } = svdF64(Float64Array.from(c.a), c.m, c.n);
    c.s.forEach((want, i) => expect(Math.abs(s[i]! - want) / want).toBeLessThan(1e-5));
  });
});
