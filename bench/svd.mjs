// SVD time (one-sided Jacobi, f32 and f64) beside numpy/LAPACK (gesdd) in the same run.
// Usage: bench/svd.sh
import { randn, tensor } from '../dist/index.js';
import { native } from '../dist/native.js'; // raw svd calls: the internal binding

const shapes = [[768, 768], [768, 3072], [3072, 768], [64, 768]];
const out = [];
for (const [m, n] of shapes) {
  for (const [dtype, code, size] of [['f32', 0, 4], ['f64', 6, 8]]) {
    const a32 = randn([m, n], { seed: 1 });
    const a = dtype === 'f32' ? a32 : a32.to('f64');
    const k = Math.min(m, n);
    const u = native.alloc(m * k * size, false), s = native.alloc(k * size, false), vt = native.alloc(k * n * size, false);
    let best = Infinity;
    for (let rep = 0; rep < 2; rep++) {
      const t0 = performance.now();
      native.svd(a.handle, 0, m, n, u, 0, s, 0, vt, 0, code);
      best = Math.min(best, (performance.now() - t0) / 1000);
    }
    out.push({ m, n, dtype, seconds: +best.toFixed(3) });
  }
}
console.log(JSON.stringify(out));
