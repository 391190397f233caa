// native.cuda: softmax, norms, embedding rows, dropout, cross-entropy, AdamW, RoPE and attention
// (the CUDA twins of ops_nn.cpp and ops_attention.cpp: same options, same
// checks; kernels in native/cuda/ops.cu, nn.cu, attention.cu). Compiled to nothing without
// TUNEKIT_WITH_CUDA.
#include "cuda_ops.h"
#ifdef TUNEKIT_WITH_CUDA

using namespace tk;
using namespace tk::napi;

// ---- softmax ----

TK_CUDA_OP(softmax) {
  Opts o(info, "softmax", Backend::Cuda);
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  const bool log = o.flag("log");
  const int64_t n = checked_elems(rows, cols, "softmax");
  const float* x = o.tensor<float>("x", n);
  float* y = o.tensor<float>("y", n);
  use_call_device(o);
  if (n > 0) cuda::softmax(x, y, rows, cols, log);  // rows of no columns: nothing to write (as the CPU)
  return info.Env().Undefined();
}

TK_CUDA_OP(softmaxBackward) {
  Opts o(info, "softmaxBackward", Backend::Cuda);
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  const bool log = o.flag("log");
  const int64_t n = checked_elems(rows, cols, "softmaxBackward");
  const float* y = o.tensor<float>("y", n);
  const float* dy = o.tensor<float>("dy", n);
  float* dx = o.tensor<float>("dx", n);
  use_call_device(o);
  if (n > 0) cuda::softmax_backward(y, dy, dx, rows, cols, log);
  return info.Env().Undefined();
}

// ---- norms ----

TK_CUDA_OP(layerNorm) {
  Opts o(info, "layerNorm", Backend::Cuda);
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  const float eps = eps_opt(o);
  check_rows_cols("layerNorm", rows, cols);
  const int64_t n = checked_elems(rows, cols, "layerNorm");
  const float* x = o.tensor<float>("x", n);
  const float* w = o.tensor<float>("w", cols);
  const float* b = o.tensor<float>("b", cols);
  float* y = o.tensor<float>("y", n);
  float* mean = o.tensor<float>("mean", rows);
  float* rstd = o.tensor<float>("rstd", rows);
  use_call_device(o);
  cuda::layer_norm(x, w, b, y, mean, rstd, rows, cols, eps);
  return info.Env().Undefined();
}

TK_CUDA_OP(layerNormBackward) {
  Opts o(info, "layerNormBackward", Backend::Cuda);
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  const bool need = o.flag("needWeightGrad");
  check_rows_cols("layerNormBackward", rows, cols);
  const int64_t n = checked_elems(rows, cols, "layerNormBackward");
  const float* x = o.tensor<float>("x", n);
  const float* w = o.tensor<float>("w", cols);
  const float* mean = o.tensor<float>("mean", rows);
  const float* rstd = o.tensor<float>("rstd", rows);
  const float* dy = o.tensor<float>("dy", n);
  float* dx = o.tensor<float>("dx", n);
  float* dw = need ? o.tensor<float>("dw", cols) : nullptr;
  float* db = need ? o.tensor<float>("db", cols) : nullptr;
  use_call_device(o);
  cuda::layer_norm_backward(x, w, mean, rstd, dy, dx, dw, db, rows, cols);
  return info.Env().Undefined();
}

TK_CUDA_OP(rmsNorm) {
  Opts o(info, "rmsNorm", Backend::Cuda);
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  const float eps = eps_opt(o);
  check_rows_cols("rmsNorm", rows, cols);
  const int64_t n = checked_elems(rows, cols, "rmsNorm");
  const float* x = o.tensor<float>("x", n);
  const float* w = o.tensor<float>("w", cols);
  float* y = o.tensor<float>("y", n);
  float* rstd = o.tensor<float>("rstd", rows);
  use_call_device(o);
  cuda::rms_norm(x, w, y, rstd, rows, cols, eps);
  return info.Env().Undefined();
}

TK_CUDA_OP(rmsNormBackward) {
  Opts o(info, "rmsNormBackward", Backend::Cuda);
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  const bool need = o.flag("needWeightGrad");
  check_rows_cols("rmsNormBackward", rows, cols);
  const int64_t n = checked_elems(rows, cols, "rmsNormBackward");
  const float* x = o.tensor<float>("x", n);
  const float* w = o.tensor<float>("w", cols);
  const float* rstd = o.tensor<float>("rstd", rows);
  const float* dy = o.tensor<float>("dy", n);
  float* dx = o.tensor<float>("dx", n);
  float* dw = need ? o.tensor<float>("dw", cols) : nullptr;
  use_call_device(o);
  cuda::rms_norm_backward(x, w, rstd, dy, dx, dw, rows, cols);
  return info.Env().Undefined();
}

// ---- embedding rows ----

// gatherRows({ table, idx, out, n, rowSize, numRows }): ids checked on the device first (ERR_INDEX)
TK_CUDA_OP(gatherRows) {
  Opts o(info, "gatherRows", Backend::Cuda);
  const int64_t n = o.count("n"), row = o.count("rowSize"), num = o.count("numRows");
  const float* table = o.tensor<float>("table", checked_elems(num, row, "gatherRows table"));
  const int32_t* idx = o.tensor<int32_t>("idx", n);
  float* out = o.tensor<float>("out", checked_elems(n, row, "gatherRows out"));
  use_call_device(o);
  cuda::gather_rows(table, idx, out, n, row, num);
  return info.Env().Undefined();
}

// scatterAddRows({ src, idx, dst, n, rowSize, numRows }): dst[idx[i], :] += src[i, :]
TK_CUDA_OP(scatterAddRows) {
  Opts o(info, "scatterAddRows", Backend::Cuda);
  const int64_t n = o.count("n"), row = o.count("rowSize"), num = o.count("numRows");
  const float* src = o.tensor<float>("src", checked_elems(n, row, "scatterAddRows src"));
  const int32_t* idx = o.tensor<int32_t>("idx", n);
  float* dst = o.tensor<float>("dst", checked_elems(num, row, "scatterAddRows dst"));
  use_call_device(o);
  cuda::scatter_add_rows(src, idx, dst, n, row, num);
  return info.Env().Undefined();
}

// ---- dropout: the CPU's counter hash, so the same seed gives the same mask on either backend ----

TK_CUDA_OP(dropout) {
  Opts o(info, "dropout", Backend::Cuda);
  const int64_t n = o.count("n");
  const float p = dropout_p_opt(o);
  const int64_t seed = o.count("seed");
  const float* x = o.tensor<float>("x", n);
  float* y = o.tensor<float>("y", n);
  uint8_t* mask = o.tensor<uint8_t>("mask", n);
  use_call_device(o);
  cuda::dropout(x, y, mask, n, p, static_cast<uint64_t>(seed));
  return info.Env().Undefined();
}

TK_CUDA_OP(dropoutBackward) {
  Opts o(info, "dropoutBackward", Backend::Cuda);
  const int64_t n = o.count("n");
  const float p = dropout_p_opt(o);
  const bool accumulate = o.flag_or("accumulate", false);
  const float* dy = o.tensor<float>("dy", n);
  const uint8_t* mask = o.tensor<uint8_t>("mask", n);
  float* dx = o.tensor<float>("dx", n);
  use_call_device(o);
  cuda::dropout_backward(dy, mask, dx, n, p, accumulate);
  return info.Env().Undefined();
}

// ---- cross-entropy ----

// crossEntropy(...) -> counted rows (waits for the device: labels are checked there first)
TK_CUDA_OP(crossEntropy) {
  Opts o(info, "crossEntropy", Backend::Cuda);
  const int64_t rows = o.count("rows"), classes = o.count("classes");
  const int64_t ignore = o.integer("ignoreIndex");
  check_rows_cols("crossEntropy", rows, classes);
  const float* logits = o.tensor<float>("logits", checked_elems(rows, classes, "crossEntropy"));
  const int32_t* labels = o.tensor<int32_t>("labels", rows);
  float* loss = o.tensor<float>("loss", rows);
  float* lse = o.tensor<float>("lse", rows);
  use_call_device(o);
  const int64_t counted = cuda::cross_entropy(logits, labels, loss, lse, rows, classes, ignore);
  return Napi::Number::New(info.Env(), static_cast<double>(counted));
}

TK_CUDA_OP(crossEntropyBackward) {
  Opts o(info, "crossEntropyBackward", Backend::Cuda);
  const int64_t rows = o.count("rows"), classes = o.count("classes");
  const int64_t ignore = o.integer("ignoreIndex");
  check_rows_cols("crossEntropyBackward", rows, classes);
  const int64_t n = checked_elems(rows, classes, "crossEntropyBackward");
  const float* logits = o.tensor<float>("logits", n);
  const int32_t* labels = o.tensor<int32_t>("labels", rows);
  const float* lse = o.tensor<float>("lse", rows);
  const float* dloss = o.tensor<float>("dloss", rows);
  float* dlogits = o.tensor<float>("dlogits", n);
  use_call_device(o);
  cuda::cross_entropy_backward(logits, labels, lse, dloss, dlogits, rows, classes, ignore);
  return info.Env().Undefined();
}

// ---- optimizer ----

TK_CUDA_OP(adamw) {
  Opts o(info, "adamw", Backend::Cuda);
  const int64_t n = o.count("n");
  const AdamWHyper h = adamw_hyper(o);
  float* param = o.tensor<float>("param", n);
  const float* grad = o.tensor<float>("grad", n);
  float* m = o.tensor<float>("m", n);
  float* v = o.tensor<float>("v", n);
  use_call_device(o);
  cuda::adamw(param, grad, m, v, n, h);
  return info.Env().Undefined();
}

// ---- rotary embedding ----

TK_CUDA_OP(rope) {
  Opts o(info, "rope", Backend::Cuda);
  const int64_t B = o.count("B"), H = o.count("H"), T = o.count("T"), D = o.count("D");
  const int64_t rot = o.count("rotDim");
  const bool inverse = o.flag("inverse");
  TK_CHECK(rot % 2 == 0 && rot <= D, Shape, "rope: rotDim must be even and <= D (", D, ") but is ", rot);
  const int64_t n = checked_elems({B, H, T, D}, "rope");
  const float* x = o.tensor<float>("x", n);
  float* out = o.tensor<float>("out", n);
  const int32_t* positions = o.tensor<int32_t>("positions", checked_elems(B, T, "rope positions"));
  const float* inv_freq = o.tensor<float>("invFreq", rot / 2);
  use_call_device(o);
  cuda::rope(x, out, positions, inv_freq, B, H, T, D, rot, inverse);
  return info.Env().Undefined();
}

// ---- attention (D <= 256 on the GPU: ERR_SHAPE from the kernel otherwise) ----

TK_CUDA_OP(attention) {
  Opts o(info, "attention", Backend::Cuda);
  const AttentionShape s = attention_shape(o);
  const int64_t nq = checked_elems({s.B, s.Hq, s.Tq, s.D}, "attention q");
  const int64_t nk = checked_elems({s.B, s.Hkv, s.Tk, s.D}, "attention k");
  const int64_t nl = checked_elems({s.B, s.Hq, s.Tq}, "attention lse");
  const float* q = o.tensor<float>("q", nq);
  const float* k = o.tensor<float>("k", nk);
  const float* v = o.tensor<float>("v", nk);
  const int32_t* mask = o.optional_tensor<int32_t>("keyMask", checked_elems(s.B, s.Tk, "attention keyMask"));
  float* out = o.tensor<float>("out", nq);
  float* lse = o.tensor<float>("lse", nl);
  use_call_device(o);
  cuda::attention_forward_f32(s, q, k, v, mask, out, lse);
  return info.Env().Undefined();
}

TK_CUDA_OP(attentionBackward) {
  Opts o(info, "attentionBackward", Backend::Cuda);
  const AttentionShape s = attention_shape(o);
  const int64_t nq = checked_elems({s.B, s.Hq, s.Tq, s.D}, "attentionBackward q");
  const int64_t nk = checked_elems({s.B, s.Hkv, s.Tk, s.D}, "attentionBackward k");
  const int64_t nl = checked_elems({s.B, s.Hq, s.Tq}, "attentionBackward lse");
  const float* q = o.tensor<float>("q", nq);
  const float* k = o.tensor<float>("k", nk);
  const float* v = o.tensor<float>("v", nk);
  const float* out = o.tensor<float>("out", nq);
  const float* lse = o.tensor<float>("lse", nl);
  const float* dout = o.tensor<float>("dout", nq);
  const int32_t* mask = o.optional_tensor<int32_t>("keyMask", checked_elems(s.B, s.Tk, "attention keyMask"));
  float* dq = o.tensor<float>("dq", nq);
  float* dk = o.tensor<float>("dk", nk);
  float* dv = o.tensor<float>("dv", nk);
  use_call_device(o);
  cuda::attention_backward_f32(s, q, k, v, out, lse, dout, mask, dq, dk, dv);
  return info.Env().Undefined();
}

#endif  // TUNEKIT_WITH_CUDA
