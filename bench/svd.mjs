// SVD time (one-sided Jacobi, f32 and f64) beside numpy/LAPACK (gesdd) in the same run.
// Usage: bench/svd.sh
import { randn, tensor } from '../dist/index.js';
import { Tensor } from '../dist/tensor/tensor.js';
import { run } from '../dist/tensor/kernels.js'; // the svd kernel through the table (internal)

const shapes = [[768, 768], [768, 3072], [3072, 768], [64, 768]];
const out = [];
for (const [m, n] of shapes) {
  for (const dtype of ['f32', 'f64']) {
    const a32 = randn([m, n], { seed: 1 });
    const a = dtype === 'f32' ? a32 : a32.castRaw('f64');
    const k = Math.min(m, n);
    const u = Tensor.empty([m, k], dtype), s = Tensor.empty([k], dtype), vt = Tensor.empty([k, n], dtype);
    let best = Infinity;
    for (let rep = 0; rep < 2; rep++) {
      const t0 = performance.now();
      run('svd', { a, m, n, u, s, vt, dtype });
      best = Math.min(best, (performance.now() - t0) / 1000);
    }
    out.push({ m, n, dtype, seconds: +best.toFixed(3) });
  }
}
console.log(JSON.stringify(out));
