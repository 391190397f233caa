// Option readers shared by the CPU and CUDA bindings (op_options.h).
#include "op_options.h"

#include <cmath>

namespace tk::napi {

void check_rows_cols(const char* fn, int64_t rows, int64_t cols) {
  TK_CHECK(rows == 0 || cols > 0, Shape, fn, ": rows of ", cols, " columns (need >= 1)");
}

float eps_opt(const Opts& o) {
  const double eps = o.number("eps");
  TK_CHECK(std::isfinite(eps) && eps >= 0, Value, o.op(), ": options.eps: expected a finite eps >= 0 but received ", eps);
  return static_cast<float>(eps);
}

float dropout_p_opt(const Opts& o) {
  const double p = o.number("p");
  TK_CHECK(p >= 0 && p < 1, Value, o.op(), ": options.p: expected a drop probability in [0, 1) but received ", p);
  return static_cast<float>(p);
}

AdamWHyper adamw_hyper(const Opts& o) {
  AdamWHyper h;
  h.lr = o.number("lr");
  h.beta1 = o.number("beta1");
  h.beta2 = o.number("beta2");
  h.eps = o.number("eps");
  h.weight_decay = o.number("weightDecay");
  h.step = o.integer("step");
  TK_CHECK(std::isfinite(h.lr) && h.lr >= 0, Value, "adamw: expected lr >= 0 but received ", h.lr);
  TK_CHECK(h.beta1 >= 0 && h.beta1 < 1, Value, "adamw: expected beta1 in [0, 1) but received ", h.beta1);
  TK_CHECK(h.beta2 >= 0 && h.beta2 < 1, Value, "adamw: expected beta2 in [0, 1) but received ", h.beta2);
  TK_CHECK(std::isfinite(h.eps) && h.eps >= 0, Value, "adamw: expected eps >= 0 but received ", h.eps);
  TK_CHECK(std::isfinite(h.weight_decay) && h.weight_decay >= 0, Value,
           "adamw: expected weightDecay >= 0 but received ", h.weight_decay);
  TK_CHECK(h.step >= 1, Value, "adamw: step is 1-based but received ", h.step);
  return h;
}

AttentionShape attention_shape(const Opts& o) {
  AttentionShape s;
  s.B = o.integer("B");
  s.Hq = o.integer("Hq");
  s.Hkv = o.integer("Hkv");
  s.Tq = o.integer("Tq");
  s.Tk = o.integer("Tk");
  s.D = o.integer("D");
  s.scale = o.finite_f32("scale");
  s.causal = o.flag("causal");
  check_attention_shape(s);
  return s;
}

LoraShape lora_shape(const Opts& o) {
  LoraShape s;
  s.M = o.integer("M");
  s.in = o.integer("inF");
  s.out = o.integer("outF");
  s.r = o.integer("r");
  s.scale = o.finite_f32("scale");
  s.w_in_out = o.flag("wInOut");
  check_lora_shape(s);
  return s;
}

int quant4_blocksize(const Opts& o) {
  const int64_t bs = o.integer("blocksize");
  TK_CHECK(bs >= 32 && bs <= 4096, Value, o.op(), ": options.blocksize must be in [32, 4096] (bitsandbytes' range) but is ", bs);
  return static_cast<int>(bs);
}

Nf4Weight nf4_weight(const Opts& o) {
  Nf4Weight w;
  w.N = o.integer("N");
  w.K = o.integer("K");
  w.blocksize = quant4_blocksize(o);
  w.type = quant4_type(o);
  TK_CHECK(w.N > 0 && w.K > 0, Shape, o.op(), ": weight sizes must be positive but are [", w.N, ", ", w.K, "]");
  const int64_t n = checked_elems(w.N, w.K, o.op());
  w.packed = o.tensor<uint8_t>("packed", (n + 1) / 2);
  w.absmax = o.tensor<float>("absmax", quant4_blocks(n, w.blocksize));
  return w;
}

std::pair<int64_t, int64_t> strided_extent(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                                           const char* fn) {
  TK_CHECK(shape.size() == strides.size(), Shape, fn, ": shape and strides differ in length");
  int64_t total = 1, max_index = 0;
  for (size_t k = 0; k < shape.size(); ++k) {
    TK_CHECK(shape[k] >= 0 && strides[k] >= 0, Value, fn, ": negative shape or stride");
    total = checked_elems(total, shape[k], fn);
    if (shape[k] > 0) max_index += checked_elems(shape[k] - 1, strides[k], fn);
  }
  return {total, max_index};
}

int64_t operand_extent(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides, const char* what) {
  int64_t extent = 1;
  for (size_t k = 0; k < shape.size(); ++k) {
    if (shape[k] == 0) return 0;
    TK_CHECK(strides[k] >= 0, Shape, what, " stride ", strides[k], " at axis ", k,
             " is negative (make the view contiguous first)");
    extent += checked_elems(shape[k] - 1, strides[k], what);
    TK_CHECK(extent <= (int64_t(1) << 53), Shape, what, " extent overflows");
  }
  return extent;
}

}  // namespace tk::napi
