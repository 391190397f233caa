// AdaLoRA's rank allocator (Zhang et al. 2023; PEFT tuners/adalora RankAllocator), f32.
//
// One adapted layer holds the SVD-form triplets  A [r, in], E [r, 1], B [out, r].
// For every parameter w with gradient g (after backward, before the gradients are cleared):
//
//   I    = |w * g|                                   sensitivity
//   Ibar = b1 * Ibar + (1 - b1) * I                  smoothed sensitivity (EMA)
//   U    = b2 * U    + (1 - b2) * |I - Ibar|         uncertainty (EMA, with the new Ibar)
//   s    = Ibar * U                                  element score
//
// and the score of triplet i is  s(E_i) + ( mean_j s(A_ij) + mean_j s(B_ji) ),
// summed in that order in f32 as PEFT does (the two means are combined first). Ranks whose
// score is <= the k-th smallest score over ALL adapted layers are masked: E_i := 0.
//
// Example (one layer, r = 4):
//   adalora_update_f32(shape, A, gA, E, gE, B, gB, st, 0.85f, 0.85f, true);   // EMAs
//   adalora_triplet_scores_f32(shape, st, scores);                           // scores[4]
//   float t = adalora_kth_smallest_f32(all_scores, n, k);                    // all layers
//   adalora_mask_f32(4, scores, t, E, keep);                                 // E_i = 0 if <= t
#pragma once
#include <cstdint>

#include "core/shapes.h"

namespace tk::cpu {

// One layer's sizes, its EMA state (each the shape of its parameter, zero at start) and the
// shape check: core/shapes.h, shared with the CUDA backend.
using tk::AdaloraShape;
using tk::AdaloraState;
using tk::check_adalora_shape;

// Updates the EMAs from the parameters and their gradients. A null gradient counts as zero
// (I = 0: the parameter got no gradient this step). beta1, beta2 in (0, 1).
void adalora_update_f32(const AdaloraShape& s, const float* a, const float* ga, const float* e, const float* ge,
                        const float* b, const float* gb, const AdaloraState& st, float beta1, float beta2);

// scores[i] = Ibar_E[i] U_E[i] + (mean_j Ibar_A[i,j] U_A[i,j] + mean_j Ibar_B[j,i] U_B[j,i]).
void adalora_triplet_scores_f32(const AdaloraShape& s, const AdaloraState& st, float* scores);

// The k-th smallest (1-based) of n values, as torch.kthvalue; 1 <= k <= n. NaN sorts last.
float adalora_kth_smallest_f32(const float* values, int64_t n, int64_t k);

// The threshold for a budget counted in parameters instead of ranks: ranks are taken in
// descending score order (NaN first, as the largest) while the running sum of their costs
// (parameters per rank, >= 0) stays <= budget; the returned value is the score of the first rank
// that does not fit, so masking every score <= it keeps a cost <= budget (ties with that rank
// are masked too). -inf when everything fits. n >= 0.
float adalora_cost_threshold_f32(const float* scores, const float* costs, int64_t n, double budget);

// E[i] = 0 where scores[i] <= threshold; keep[i] = 1 if kept, 0 if masked (keep may be null).
// Returns the number of kept ranks.
int64_t adalora_mask_f32(int64_t r, const float* scores, float threshold, float* e, uint8_t* keep);

// E[i] = 0 where keep[i] == 0 (the frozen rank pattern after T - tfinal).
void adalora_apply_pattern_f32(int64_t r, const uint8_t* keep, float* e);

// Plain double-precision loops over the same formulas: the oracle for the tests.
void adalora_update_reference(const AdaloraShape& s, const float* a, const float* ga, const float* e,
                              const float* ge, const float* b, const float* gb, const AdaloraState& st,
                              float beta1, float beta2);
void adalora_triplet_scores_reference(const AdaloraShape& s, const AdaloraState& st, float* scores);

}  // namespace tk::cpu
