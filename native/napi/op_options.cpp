// Option readers shared by the CPU and CUDA bindings (op_options.h).
#include "op_options.h"

#include <cmath>
#include <vector>

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

BinaryArgs binary_args(const Opts& o) {
  BinaryArgs r;
  r.op = binary_op(o);
  r.shape = o.ints("outShape");
  r.a_strides = o.ints("aStrides");
  r.b_strides = o.ints("bStrides");
  const std::vector<int64_t>& shape = r.shape;
  TK_CHECK(r.a_strides.size() == shape.size() && r.b_strides.size() == shape.size(), Shape, "binary: outShape has ",
           shape.size(), " dims but aStrides has ", r.a_strides.size(), " and bStrides ", r.b_strides.size());
  r.total = 1;
  for (size_t k = 0; k < shape.size(); ++k) {
    TK_CHECK(shape[k] >= 0, Shape, "binary: outShape[", k, "] = ", shape[k], " is negative");
    r.total = checked_elems(r.total, shape[k], "binary outShape");
  }
  r.a = o.tensor<float>("a", operand_extent(shape, r.a_strides, "binary a"));
  r.b = o.tensor<float>("b", operand_extent(shape, r.b_strides, "binary b"));
  r.out = o.tensor<float>("out", r.total);
  return r;
}

UnaryArgs unary_args(const Opts& o, bool backward) {
  UnaryArgs r;
  r.op = unary_op(o);
  r.n = o.count("n");
  r.param = static_cast<float>(o.number("param"));
  r.x = o.tensor<float>("x", r.n);
  if (backward) {
    r.y = o.tensor<float>("y", r.n);
    r.dy = o.tensor<float>("dy", r.n);
    r.out = o.tensor<float>("dx", r.n);
  } else {
    r.out = o.tensor<float>("out", r.n);
  }
  return r;
}

ReduceArgs reduce_args(const Opts& o) {
  ReduceArgs r;
  r.op = reduce_op(o);
  r.outer = o.count("outer");
  r.n = o.count("n");
  r.inner = o.count("inner");
  const int64_t out_count = checked_elems(r.outer, r.inner, "reduce");
  TK_CHECK(r.n > 0 || out_count == 0 || r.op == ReduceOp::Sum || r.op == ReduceOp::Mean, Shape,
           "reduce: max/min over an empty axis (n = 0) has no identity");
  r.x = o.tensor<float>("x", checked_elems(out_count, r.n, "reduce"));
  r.out = o.tensor<float>("out", out_count);
  return r;
}

GemmArgs gemm_args(const Opts& o) {
  GemmArgs g;
  GemmShape& s = g.shape;
  s.transA = o.flag("transA");
  s.transB = o.flag("transB");
  s.M = o.count("M");
  s.N = o.count("N");
  s.K = o.count("K");
  s.alpha = static_cast<float>(o.number("alpha"));
  s.beta = static_cast<float>(o.number("beta"));
  s.lda = s.transA ? s.M : s.K;
  s.ldb = s.transB ? s.K : s.N;
  s.ldc = s.N;
  g.batch = o.integer("batch");
  g.dtype = o.dtype("dtype");
  TK_CHECK(g.batch >= 1, Shape, "gemm: batch must be >= 1 but is ", g.batch);
  g.na = checked_elems({g.batch, s.M, s.K}, "gemm A");
  g.nb = checked_elems({g.batch, s.K, s.N}, "gemm B");
  g.nc = checked_elems({g.batch, s.M, s.N}, "gemm C");
  return g;
}

namespace {

// The base weight of a fused LoRA call: f32, or with wDtype 'bf16' the frozen weight's bf16 copy.
void read_lora_weight(const Opts& o, int64_t n_w, const float*& w, const uint16_t*& w_bf16) {
  const DType dt = o.has("wDtype") ? o.dtype("wDtype") : DType::F32;
  TK_CHECK(dt == DType::F32 || dt == DType::BF16, Dtype, o.op(), ": options.wDtype must be f32 or bf16, got ", dtype_name(dt));
  if (dt == DType::BF16) w_bf16 = o.tensor<uint16_t>("w", n_w);
  else w = o.tensor<float>("w", n_w);
}

}  // namespace

LoraForwardArgs lora_forward_args(const Opts& o) {
  LoraForwardArgs r;
  const LoraShape& s = r.s = lora_shape(o);
  r.p = dropout_p_opt(o);
  r.seed = static_cast<uint64_t>(o.count("seed"));
  const int64_t n_x = checked_elems(s.M, s.in, "loraLinearForward x"), n_w = checked_elems(s.out, s.in, "loraLinearForward w");
  r.x = o.tensor<float>("x", n_x);
  read_lora_weight(o, n_w, r.w, r.w_bf16);
  r.bias = o.optional_tensor<float>("bias", s.out);
  r.a = o.tensor<float>("a", checked_elems(s.r, s.in, "loraLinearForward a"));
  r.b = o.tensor<float>("b", checked_elems(s.out, s.r, "loraLinearForward b"));
  r.y = o.tensor<float>("y", checked_elems(s.M, s.out, "loraLinearForward y"));
  r.xa = o.tensor<float>("xa", checked_elems(s.M, s.r, "loraLinearForward xa"));
  if (r.p > 0) {
    TK_CHECK(o.has("mask"), Value, "loraLinearForward: options.mask is required when the dropout p > 0");
    r.mask = o.tensor<uint8_t>("mask", n_x);
  }
  return r;
}

LoraBackwardArgs lora_backward_args(const Opts& o) {
  LoraBackwardArgs r;
  const LoraShape& s = r.s = lora_shape(o);
  r.p = dropout_p_opt(o);
  const int64_t n_x = checked_elems(s.M, s.in, "loraLinearBackward x");
  r.dy = o.tensor<float>("dy", checked_elems(s.M, s.out, "loraLinearBackward dy"));
  r.x = o.tensor<float>("x", n_x);
  if (r.p > 0) {
    TK_CHECK(o.has("mask"), Value, "loraLinearBackward: options.mask (the forward's) is required when the dropout p > 0");
    r.mask = o.tensor<uint8_t>("mask", n_x);
  }
  read_lora_weight(o, checked_elems(s.out, s.in, "loraLinearBackward w"), r.w, r.w_bf16);
  r.a = o.tensor<float>("a", checked_elems(s.r, s.in, "loraLinearBackward a"));
  r.b = o.tensor<float>("b", checked_elems(s.out, s.r, "loraLinearBackward b"));
  r.xa = o.tensor<float>("xa", checked_elems(s.M, s.r, "loraLinearBackward xa"));
  r.dx = o.optional_tensor<float>("dx", n_x);
  r.da = o.tensor<float>("da", checked_elems(s.r, s.in, "loraLinearBackward da"));
  r.db = o.tensor<float>("db", checked_elems(s.out, s.r, "loraLinearBackward db"));
  return r;
}

LstmShape lstm_shape(const Opts& o) {
  LstmShape s;
  s.B = o.integer("B");
  s.T = o.integer("T");
  s.in = o.integer("inF");
  s.H = o.integer("hidden");
  s.reverse = o.flag("reverse");
  check_lstm_shape(s);
  return s;
}

LstmForwardArgs lstm_forward_args(const Opts& o) {
  LstmForwardArgs r;
  const LstmShape& s = r.s = lstm_shape(o);
  const int64_t G = 4 * s.H, BT = s.B * s.T;
  r.x = o.tensor<float>("x", BT * s.in);
  r.wih = o.tensor<float>("wih", G * s.in);
  r.whh = o.tensor<float>("whh", G * s.H);
  r.bih = o.optional_tensor<float>("bih", G);
  r.bhh = o.optional_tensor<float>("bhh", G);
  r.y = o.tensor<float>("y", BT * s.H);
  r.gates = o.tensor<float>("gates", BT * G);
  r.cell = o.tensor<float>("cell", BT * s.H);
  return r;
}

LstmBackwardArgs lstm_backward_args(const Opts& o) {
  LstmBackwardArgs r;
  const LstmShape& s = r.s = lstm_shape(o);
  const int64_t G = 4 * s.H, BT = s.B * s.T;
  r.dy = o.tensor<float>("dy", BT * s.H);
  r.x = o.tensor<float>("x", BT * s.in);
  r.wih = o.tensor<float>("wih", G * s.in);
  r.whh = o.tensor<float>("whh", G * s.H);
  r.y = o.tensor<float>("y", BT * s.H);
  r.gates = o.tensor<float>("gates", BT * G);
  r.cell = o.tensor<float>("cell", BT * s.H);
  r.dx = o.optional_tensor<float>("dx", BT * s.in);
  r.dwih = o.tensor<float>("dwih", G * s.in);
  r.dwhh = o.tensor<float>("dwhh", G * s.H);
  r.db = o.tensor<float>("db", G);
  return r;
}

AdaloraScoresArgs adalora_scores_args(const Opts& o) {
  AdaloraScoresArgs r;
  AdaloraShape& s = r.s;
  s.r = o.integer("r");
  s.in = o.integer("inF");
  s.out = o.integer("outF");
  check_adalora_shape(s);
  const double beta1 = o.number("beta1");
  const double beta2 = o.number("beta2");
  r.update = o.flag("update");
  const int64_t na = checked_elems(s.r, s.in, "adaloraUpdateScores a"), nb = checked_elems(s.out, s.r, "adaloraUpdateScores b");
  float* state = o.tensor<float>("state", 2 * (na + s.r + nb));
  r.st.ibar_a = state;
  r.st.unc_a = state + na;
  r.st.ibar_e = state + 2 * na;
  r.st.unc_e = state + 2 * na + s.r;
  r.st.ibar_b = state + 2 * na + 2 * s.r;
  r.st.unc_b = state + 2 * na + 2 * s.r + nb;
  r.scores = o.optional_tensor<float>("scores", s.r);
  if (r.update) {
    TK_CHECK(std::isfinite(beta1) && std::isfinite(beta2), Value, "adaloraUpdateScores: betas must be finite");
    r.beta1 = static_cast<float>(beta1);
    r.beta2 = static_cast<float>(beta2);
    r.a = o.tensor<float>("a", na);
    r.ga = o.optional_tensor<float>("ga", na);
    r.e = o.tensor<float>("e", s.r);
    r.ge = o.optional_tensor<float>("ge", s.r);
    r.b = o.tensor<float>("b", nb);
    r.gb = o.optional_tensor<float>("gb", nb);
  }
  return r;
}

AdaloraKthArgs adalora_kth_args(const Opts& o) {
  AdaloraKthArgs r;
  r.n = o.integer("n");
  r.k = o.integer("k");
  TK_CHECK(r.n >= 1 && r.k >= 1 && r.k <= r.n, Value, "adaloraKthSmallest: needs 1 <= k <= n but k=", r.k, " n=", r.n);
  r.values = o.tensor<float>("values", r.n);
  return r;
}

AdaloraCostArgs adalora_cost_args(const Opts& o) {
  AdaloraCostArgs r;
  r.n = o.integer("n");
  TK_CHECK(r.n >= 1, Value, "adaloraCostThreshold: needs n >= 1 but n=", r.n);
  r.budget = o.number("budget");
  r.scores = o.tensor<float>("scores", r.n);
  r.costs = o.tensor<float>("costs", r.n);
  return r;
}

AdaloraMaskArgs adalora_mask_args(const Opts& o) {
  AdaloraMaskArgs m;
  m.r = o.integer("r");
  TK_CHECK(m.r >= 0, Shape, "adaloraMask: negative rank ", m.r);
  m.threshold = static_cast<float>(o.number("threshold"));
  m.e = o.tensor<float>("e", m.r);
  m.scores = o.tensor<float>("scores", m.r);
  m.keep = o.optional_tensor<uint8_t>("keep", m.r);
  return m;
}

Quant4QuantizeArgs quant4_quantize_args(const Opts& o) {
  Quant4QuantizeArgs r;
  r.n = o.count("n");
  r.blocksize = quant4_blocksize(o);
  r.type = quant4_type(o);
  r.w = o.tensor<float>("w", r.n);
  r.packed = o.tensor<uint8_t>("packed", (r.n + 1) / 2);
  r.absmax = o.tensor<float>("absmax", quant4_blocks(r.n, r.blocksize));
  return r;
}

}  // namespace tk::napi
