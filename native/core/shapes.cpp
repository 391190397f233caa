// Checks of the backend-neutral shape structs (shapes.h), shared by every backend's kernels.
#include "core/shapes.h"

#include <cmath>

#include "core/status.h"

namespace tk {

void check_attention_shape(const AttentionShape& s) {
  TK_CHECK(s.B >= 0 && s.Hq >= 0 && s.Tq >= 0 && s.Tk >= 0 && s.D >= 0, Shape,
           "attention: negative size B=", s.B, " Hq=", s.Hq, " Tq=", s.Tq, " Tk=", s.Tk, " D=", s.D);
  TK_CHECK(s.Hkv >= 1, Shape, "attention: expected Hkv >= 1 but received ", s.Hkv);
  TK_CHECK(s.Hq % s.Hkv == 0, Shape, "attention: Hq (", s.Hq, ") must be a multiple of Hkv (", s.Hkv, ")");
  TK_CHECK(!s.causal || s.Tq <= s.Tk, Shape, "attention: causal needs Tq <= Tk but Tq=", s.Tq, " Tk=", s.Tk);
  TK_CHECK(std::isfinite(s.scale), Value, "attention: scale must be finite but is ", s.scale);
}

void check_lora_shape(const LoraShape& s) {
  TK_CHECK(s.M >= 0 && s.in >= 0 && s.out >= 0 && s.r >= 0, Shape, "loraLinear: negative size M=", s.M,
           " in=", s.in, " out=", s.out, " r=", s.r);
  TK_CHECK(std::isfinite(s.scale), Value, "loraLinear: scale must be finite but is ", s.scale);
}

void check_adalora_shape(const AdaloraShape& s) {
  TK_CHECK(s.r >= 0 && s.in >= 0 && s.out >= 0, Shape, "adalora: negative size r=", s.r, " in=", s.in,
           " out=", s.out);
}

void check_lstm_shape(const LstmShape& s) {
  TK_CHECK(s.B >= 0 && s.T >= 0 && s.in >= 0 && s.H >= 0, Shape, "lstm: negative size B=", s.B, " T=", s.T,
           " in=", s.in, " H=", s.H);
  const int64_t lim = int64_t{1} << 40;
  TK_CHECK(s.B < lim && s.T < lim && s.in < lim && s.H < lim / 4, Shape, "lstm: sizes too large");
  int64_t n = 0;
  TK_CHECK(!__builtin_mul_overflow(s.B * s.T, 4 * s.H + s.in, &n) && n < (int64_t{1} << 60), Shape,
           "lstm: sizes overflow");
}

}  // namespace tk
