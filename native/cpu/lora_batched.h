// Linear layer with a different LoRA adapter per row, f32, forward only (serving).
//
// Punica's / S-LoRA's gathered (segmented) LoRA product: one batched base product for every row,
// then each row adds the low-rank update of the adapter it names:
//
//   y [M, out] = x [M, in] W^T + bias
//   y[i, :]   += scale[a] * (x[i, :] A_a^T) B_a^T      for each row i with a = row_slot[i] >= 0
//
//   W        : [out, in] (nn.Linear) or [in, out] when w_in_out (GPT-2 Conv1D, y = x W)
//   bias     : [out] or null
//   row_slot : i32 [M], the adapter slot of each row in [0, slots), or -1 for the base model alone
//   r_off    : i32 [slots + 1], r_off[0] = 0, non-decreasing, r_off[slots] = R. Slot a owns rank
//              rows [r_off[a], r_off[a+1]) of both packs: its rank is r_a = r_off[a+1] - r_off[a]
//              (0 for an adapter that does not target this layer: its rows get the base only)
//   a_pack   : [R, in]   the A matrices of all slots stacked (A_a [r_a, in], PEFT's lora_A)
//   bt_pack  : [R, out]  the B matrices, transposed and stacked (B_a^T [r_a, out]; PEFT's lora_B
//              is B_a [out, r_a])
//   scale    : f32 [slots], alpha / r (or alpha / sqrt(r), rsLoRA) of each slot
//
// Rows are grouped by slot (a counting sort), so each adapter's rows go through two GEMMs
// (shrink x A^T to [m, r_a], expand to [m, out]) however the rows are interleaved: a slot's rows
// are gathered into a scratch block unless they are already consecutive. The order of rows never
// changes a row's result beyond the GEMM's own blocking, and a row's result never depends on
// what the other rows hold.
#pragma once
#include <cstdint>

namespace tk::cpu {

struct LoraBatchedShape {
  int64_t M = 0, in = 0, out = 0;
  int64_t slots = 0;  // adapters in the packs
  int64_t R = 0;      // stacked rank rows, r_off[slots]
  bool w_in_out = false;
};

// Throws tk::Error (ERR_SHAPE / ERR_VALUE / ERR_INDEX) on negative sizes, an r_off that is not a
// non-decreasing 0..R partition, a non-finite scale, or a row slot outside [-1, slots).
void check_lora_batched(const LoraBatchedShape& s, const int32_t* row_slot, const int32_t* r_off,
                        const float* scale);

void lora_batched_linear_forward_f32(const LoraBatchedShape& s, const float* x, const float* w, const float* bias,
                                     const int32_t* row_slot, const float* a_pack, const float* bt_pack,
                                     const int32_t* r_off, const float* scale, float* y);

// Plain loops, one row at a time, double accumulation: the oracle for the fast path.
void lora_batched_linear_forward_reference(const LoraBatchedShape& s, const float* x, const float* w,
                                           const float* bias, const int32_t* row_slot, const float* a_pack,
                                           const float* bt_pack, const int32_t* r_off, const float* scale, float* y);

}  // namespace tk::cpu
