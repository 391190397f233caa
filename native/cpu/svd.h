// Singular value decomposition on the CPU by one-sided (Hestenes) Jacobi, f32 and f64.
//
//   A [m, n] (row-major) = U [m, k] diag(s) [k] Vt [k, n],   k <= min(m, n)
//
// k = min(m, n) gives the thin ("economy") SVD; a smaller k keeps the k largest triplets (the
// best rank-k approximation, Eckart-Young). s is non-negative and descending; the columns of U
// and the rows of Vt are orthonormal, also for rank-deficient A (directions of zero singular
// values are completed to an orthonormal set). U or Vt may be null when not wanted.
//
// One-sided Jacobi orthogonalises the min(m, n) columns of A (or of A^T when m < n) by plane
// rotations until every pair is orthogonal to working precision; it is slower than
// bidiagonalisation for large matrices but simple, and it computes small singular values to high
// relative accuracy, which is what AdaLoRA's rank analysis of small adapter matrices needs.
// Dot products accumulate in double for both dtypes.
#pragma once
#include <cstdint>

namespace tk::cpu {

// Throws tk::Error: ERR_SHAPE unless m, n >= 0 and 0 <= k <= min(m, n); ERR_VALUE when A holds
// NaN or infinity. Returns the number of Jacobi sweeps used.
int svd_f32(int64_t m, int64_t n, int64_t k, const float* a, float* u, float* s, float* vt);
int svd_f64(int64_t m, int64_t n, int64_t k, const double* a, double* u, double* s, double* vt);

}  // namespace tk::cpu
