// Gathered / segmented LoRA product on the CPU (see lora_batched.h): the base GEMM over all rows,
// then per adapter slot a shrink and an expand GEMM over that slot's rows, plus a plain reference.
#include "lora_batched.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/status.h"
#include "../core/thread_pool.h"
#include "gemm.h"

namespace tk::cpu {

void check_lora_batched(const LoraBatchedShape& s, const int32_t* row_slot, const int32_t* r_off,
                        const float* scale) {
  TK_CHECK(s.M >= 0 && s.in >= 0 && s.out >= 0 && s.slots >= 0 && s.R >= 0, Shape,
           "loraBatchedLinear: negative size M=", s.M, " in=", s.in, " out=", s.out, " slots=", s.slots, " R=", s.R);
  if (s.slots > 0) {
    TK_CHECK(r_off != nullptr && scale != nullptr, Value, "loraBatchedLinear: rOff and scales are required with ",
             s.slots, " slots");
    TK_CHECK(r_off[0] == 0, Value, "loraBatchedLinear: rOff[0] must be 0 but is ", r_off[0]);
    for (int64_t a = 0; a < s.slots; ++a) {
      TK_CHECK(r_off[a + 1] >= r_off[a], Value, "loraBatchedLinear: rOff must be non-decreasing but rOff[", a,
               "]=", r_off[a], " > rOff[", a + 1, "]=", r_off[a + 1]);
      TK_CHECK(std::isfinite(scale[a]), Value, "loraBatchedLinear: scale of slot ", a, " must be finite but is ",
               scale[a]);
    }
    TK_CHECK(r_off[s.slots] == s.R, Value, "loraBatchedLinear: rOff[", s.slots, "]=", r_off[s.slots],
             " must equal the packed rank rows R=", s.R);
  } else {
    TK_CHECK(s.R == 0, Value, "loraBatchedLinear: R=", s.R, " rank rows but no slots");
  }
  if (s.M > 0) TK_CHECK(row_slot != nullptr, Value, "loraBatchedLinear: rowSlot is required");
  for (int64_t i = 0; i < s.M; ++i) {
    TK_CHECK(row_slot[i] >= -1 && row_slot[i] < s.slots, Index, "loraBatchedLinear: row ", i, " names slot ",
             row_slot[i], " but slots are 0..", s.slots - 1, " (or -1 for none)");
  }
}

void lora_batched_linear_forward_f32(const LoraBatchedShape& s, const float* x, const float* w, const float* bias,
                                     const int32_t* row_slot, const float* a_pack, const float* bt_pack,
                                     const int32_t* r_off, const float* scale, float* y) {
  check_lora_batched(s, row_slot, r_off, scale);
  const int64_t M = s.M, in = s.in, out = s.out;
  if (M == 0 || out == 0) return;
  // y = bias broadcast over rows, then the base product accumulates onto it (as lora.cpp does,
  // so a row's base part is computed the way the single-adapter kernel computes it).
  if (bias) {
    parallel_for(M, 64, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) std::copy(bias, bias + out, y + i * out);
    });
  }
  const float base_beta = bias ? 1.0f : 0.0f;
  if (in == 0) {
    if (!bias) std::fill(y, y + M * out, 0.0f);
    return;  // every product is an empty sum (the LoRA updates too)
  }
  if (s.w_in_out) gemm_f32(false, false, M, out, in, 1.0f, x, in, w, out, base_beta, y, out);
  else gemm_f32(false, true, M, out, in, 1.0f, x, in, w, in, base_beta, y, out);
  if (s.slots == 0) return;

  // Counting sort of the rows by slot: rows_of[start[a] .. start[a+1]) are slot a's rows, in order.
  std::vector<int64_t> start(static_cast<size_t>(s.slots + 1), 0);
  for (int64_t i = 0; i < M; ++i)
    if (row_slot[i] >= 0) ++start[row_slot[i] + 1];
  for (int64_t a = 0; a < s.slots; ++a) start[a + 1] += start[a];
  std::vector<int64_t> rows_of(static_cast<size_t>(start[s.slots]));
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < M; ++i)
      if (row_slot[i] >= 0) rows_of[fill[row_slot[i]]++] = i;
  }

  std::vector<float> xs, ys, xa;  // gathered rows [m, in], [m, out]; shrink result [m, r]
  for (int64_t a = 0; a < s.slots; ++a) {
    const int64_t m = start[a + 1] - start[a], r = r_off[a + 1] - r_off[a];
    if (m == 0 || r == 0) continue;
    const int64_t* rows = rows_of.data() + start[a];
    // A slot's rows already consecutive (one sequence's prompt, or a batch sorted by adapter) are
    // used in place; otherwise they are gathered into scratch and scattered back.
    const bool consecutive = rows[m - 1] - rows[0] == m - 1;
    const float* xa_in = x + rows[0] * in;
    float* ya = y + rows[0] * out;
    if (!consecutive) {
      xs.resize(static_cast<size_t>(m * in));
      ys.resize(static_cast<size_t>(m * out));
      for (int64_t j = 0; j < m; ++j) {
        std::memcpy(xs.data() + j * in, x + rows[j] * in, sizeof(float) * in);
        std::memcpy(ys.data() + j * out, y + rows[j] * out, sizeof(float) * out);
      }
      xa_in = xs.data();
      ya = ys.data();
    }
    xa.resize(static_cast<size_t>(m * r));
    const float* A = a_pack + static_cast<int64_t>(r_off[a]) * in;    // [r, in]
    const float* BT = bt_pack + static_cast<int64_t>(r_off[a]) * out;  // [r, out]
    // shrink: xa [m, r] = x_a [m, in] A^T ; expand: y_a [m, out] += scale (xa [m, r] B^T [r, out])
    gemm_f32(false, true, m, r, in, 1.0f, xa_in, in, A, in, 0.0f, xa.data(), r);
    gemm_f32(false, false, m, out, r, scale[a], xa.data(), r, BT, out, 1.0f, ya, out);
    if (!consecutive) {
      for (int64_t j = 0; j < m; ++j) std::memcpy(y + rows[j] * out, ys.data() + j * out, sizeof(float) * out);
    }
  }
}

void lora_batched_linear_forward_reference(const LoraBatchedShape& s, const float* x, const float* w,
                                           const float* bias, const int32_t* row_slot, const float* a_pack,
                                           const float* bt_pack, const int32_t* r_off, const float* scale, float* y) {
  check_lora_batched(s, row_slot, r_off, scale);
  const int64_t in = s.in, out = s.out;
  std::vector<double> xa;
  for (int64_t i = 0; i < s.M; ++i) {
    const float* xi = x + i * in;
    const int32_t a = row_slot[i];
    const int64_t r0 = a >= 0 ? r_off[a] : 0, r = a >= 0 ? r_off[a + 1] - r_off[a] : 0;
    // xa[k] = sum_c x[i, c] A_a[k, c]
    xa.assign(static_cast<size_t>(r), 0.0);
    for (int64_t k = 0; k < r; ++k)
      for (int64_t c = 0; c < in; ++c) xa[k] += static_cast<double>(xi[c]) * a_pack[(r0 + k) * in + c];
    for (int64_t o = 0; o < out; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t c = 0; c < in; ++c)
        acc += static_cast<double>(xi[c]) * (s.w_in_out ? w[c * out + o] : w[o * in + c]);
      double lora = 0;
      for (int64_t k = 0; k < r; ++k) lora += xa[k] * bt_pack[(r0 + k) * out + o];
      y[i * out + o] = static_cast<float>(acc + (a >= 0 ? scale[a] * lora : 0.0));
    }
  }
}

}  // namespace tk::cpu
