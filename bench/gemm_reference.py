#!/usr/bin/env python3
"""OpenBLAS side of the GEMM benchmark: GFLOP/s of numpy's matmul (OpenBLAS) on one shape.

usage: gemm_reference.py M K N [ta tb] [f32]
  C[M,N] = op(A)[M,K] op(B)[K,N]; ta/tb 0/1 pick transposed storage (A as [K,M], B as [N,K]),
  passed to OpenBLAS as transposed views, so sgemm sees the same transpose flags as ours.
Prints "openblas <GFLOP/s>" (best of repeated calls after a warm-up, at least 0.3 s).
With TUNEKIT_BENCH_CLOCK=cpu it times process CPU time instead of wall time (fair for
single-threaded runs on a machine shared with other jobs; see bench/gemm.sh).
Run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (bench/gemm.sh does): these machines
set them, which holds OpenBLAS to its Haswell kernels at about half speed.
"""
import os
import sys
import time

import numpy as np


def main():
    a = sys.argv[1:]
    M, K, N = int(a[0]), int(a[1]), int(a[2])
    ta = len(a) > 3 and a[3] == "1"
    tb = len(a) > 4 and a[4] == "1"
    rng = np.random.default_rng(0)
    A = (rng.random((K, M) if ta else (M, K), dtype=np.float32) - 0.5)
    B = (rng.random((N, K) if tb else (K, N), dtype=np.float32) - 0.5)
    opA = A.T if ta else A
    opB = B.T if tb else B
    C = np.empty((M, N), dtype=np.float32)
    np.matmul(opA, opB, out=C)
    clock = time.process_time if os.environ.get("TUNEKIT_BENCH_CLOCK") == "cpu" else time.perf_counter
    best, total, reps = 1e30, 0.0, 0
    while reps < 3 or total < 0.3:
        t0 = clock()
        np.matmul(opA, opB, out=C)
        dt = clock() - t0
        best = min(best, dt)
        total += dt
        reps += 1
    print("openblas %.2f" % (2.0 * M * N * K / best / 1e9))


if __name__ == "__main__":
    main()
