"""numpy (LAPACK gesdd through OpenBLAS) SVD times for the shapes of bench/svd.mjs."""
import json, time
import numpy as np

out = []
for m, n in [(768, 768), (768, 3072), (3072, 768), (64, 768)]:
    for dt in (np.float32, np.float64):
        a = np.random.default_rng(1).standard_normal((m, n)).astype(dt)
        best = 1e9
        for _ in range(2):
            t0 = time.perf_counter(); np.linalg.svd(a, full_matrices=False); best = min(best, time.perf_counter() - t0)
        out.append({"m": m, "n": n, "dtype": "f32" if dt == np.float32 else "f64", "seconds": round(best, 3)})
print(json.dumps(out))
