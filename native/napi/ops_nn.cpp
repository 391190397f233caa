// Bindings for softmax, norms, embedding, dropout, cross-entropy, AdamW and RoPE
// (lib/native.ts, section "softmax / norms / embedding / dropout / losses / optimizer"), f32.
// Sizes, hyper-parameters and ids are validated here (ids again in the kernels, which throw
// ERR_INDEX naming the offending id and its position) before a kernel touches memory.
#include <cmath>
#include <limits>

#include "cpu/adamw.h"
#include "cpu/cross_entropy.h"
#include "cpu/dropout.h"
#include "cpu/embedding.h"
#include "cpu/norm.h"
#include "cpu/rope.h"
#include "cpu/softmax.h"
#include "napi_util.h"
#include "op_options.h"

using namespace tk;
using namespace tk::napi;


// ---- softmax ----

// softmax({ x, y, rows, cols, log }): y = softmax (log-softmax when log) over each row
TK_CPU_OP(softmax) {
  Opts o(info, "softmax");
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  const bool log = o.flag("log");
  const int64_t n = checked_elems(rows, cols, "softmax");
  cpu::softmax(o.tensor<float>("x", n), o.tensor<float>("y", n), rows, cols, log);
  return info.Env().Undefined();
}

// softmaxBackward({ y, dy, dx, rows, cols, log })
TK_CPU_OP(softmaxBackward) {
  Opts o(info, "softmaxBackward");
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  const bool log = o.flag("log");
  const int64_t n = checked_elems(rows, cols, "softmaxBackward");
  cpu::softmax_backward(o.tensor<float>("y", n), o.tensor<float>("dy", n), o.tensor<float>("dx", n), rows, cols, log);
  return info.Env().Undefined();
}

// ---- norms ----

// layerNorm({ x, w, b, y, mean, rstd, rows, cols, eps })
TK_CPU_OP(layerNorm) {
  Opts o(info, "layerNorm");
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  const float eps = eps_opt(o);
  check_rows_cols("layerNorm", rows, cols);
  const int64_t n = checked_elems(rows, cols, "layerNorm");
  cpu::layer_norm(o.tensor<float>("x", n), o.tensor<float>("w", cols), o.tensor<float>("b", cols), o.tensor<float>("y", n),
                  o.tensor<float>("mean", rows), o.tensor<float>("rstd", rows), rows, cols, eps);
  return info.Env().Undefined();
}

// layerNormBackward({ x, w, mean, rstd, dy, dx, dw, db, rows, cols, needWeightGrad }): dw, db only when needWeightGrad
TK_CPU_OP(layerNormBackward) {
  Opts o(info, "layerNormBackward");
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  const bool need = o.flag("needWeightGrad");
  check_rows_cols("layerNormBackward", rows, cols);
  const int64_t n = checked_elems(rows, cols, "layerNormBackward");
  cpu::layer_norm_backward(o.tensor<float>("x", n), o.tensor<float>("w", cols), o.tensor<float>("mean", rows),
                           o.tensor<float>("rstd", rows), o.tensor<float>("dy", n), o.tensor<float>("dx", n),
                           need ? o.tensor<float>("dw", cols) : nullptr, need ? o.tensor<float>("db", cols) : nullptr, rows, cols);
  return info.Env().Undefined();
}

// rmsNorm({ x, w, y, rstd, rows, cols, eps })
TK_CPU_OP(rmsNorm) {
  Opts o(info, "rmsNorm");
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  const float eps = eps_opt(o);
  check_rows_cols("rmsNorm", rows, cols);
  const int64_t n = checked_elems(rows, cols, "rmsNorm");
  cpu::rms_norm(o.tensor<float>("x", n), o.tensor<float>("w", cols), o.tensor<float>("y", n), o.tensor<float>("rstd", rows), rows,
                cols, eps);
  return info.Env().Undefined();
}

// rmsNormBackward({ x, w, rstd, dy, dx, dw, rows, cols, needWeightGrad })
TK_CPU_OP(rmsNormBackward) {
  Opts o(info, "rmsNormBackward");
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  const bool need = o.flag("needWeightGrad");
  check_rows_cols("rmsNormBackward", rows, cols);
  const int64_t n = checked_elems(rows, cols, "rmsNormBackward");
  cpu::rms_norm_backward(o.tensor<float>("x", n), o.tensor<float>("w", cols), o.tensor<float>("rstd", rows),
                         o.tensor<float>("dy", n), o.tensor<float>("dx", n), need ? o.tensor<float>("dw", cols) : nullptr,
                         rows, cols);
  return info.Env().Undefined();
}

// ---- embedding ----

// gatherRows({ table, idx, out, n, rowSize, numRows }): out[i, :] = table[idx[i], :]
TK_CPU_OP(gatherRows) {
  Opts o(info, "gatherRows");
  const int64_t n = o.count("n"), row = o.count("rowSize"), num = o.count("numRows");
  const float* table = o.tensor<float>("table", checked_elems(num, row, "gatherRows table"));
  const int32_t* idx = o.tensor<int32_t>("idx", n);
  float* out = o.tensor<float>("out", checked_elems(n, row, "gatherRows out"));
  cpu::gather_rows(table, idx, out, n, row, num);  // ERR_INDEX on a bad id, before any write
  return info.Env().Undefined();
}

// scatterAddRows({ src, idx, dst, n, rowSize, numRows }): dst[idx[i], :] += src[i, :]
TK_CPU_OP(scatterAddRows) {
  Opts o(info, "scatterAddRows");
  const int64_t n = o.count("n"), row = o.count("rowSize"), num = o.count("numRows");
  const float* src = o.tensor<float>("src", checked_elems(n, row, "scatterAddRows src"));
  const int32_t* idx = o.tensor<int32_t>("idx", n);
  float* dst = o.tensor<float>("dst", checked_elems(num, row, "scatterAddRows dst"));
  cpu::scatter_add_rows(src, idx, dst, n, row, num);
  return info.Env().Undefined();
}

// ---- dropout ----

// dropout({ x, y, mask, n, p, seed }): y = x * mask / (1 - p), mask u8 from the counter hash of (seed, i)
TK_CPU_OP(dropout) {
  Opts o(info, "dropout");
  const int64_t n = o.count("n");
  const float p = dropout_p_opt(o);
  const int64_t seed = o.count("seed");
  cpu::dropout(o.tensor<float>("x", n), o.tensor<float>("y", n), o.tensor<uint8_t>("mask", n), n, p, static_cast<uint64_t>(seed));
  return info.Env().Undefined();
}

// dropoutBackward({ dy, mask, dx, n, p, accumulate? }): dx (+)= dy * mask / (1 - p)
TK_CPU_OP(dropoutBackward) {
  Opts o(info, "dropoutBackward");
  const int64_t n = o.count("n");
  const float p = dropout_p_opt(o);
  const bool accumulate = o.flag_or("accumulate", false);
  cpu::dropout_backward(o.tensor<float>("dy", n), o.tensor<uint8_t>("mask", n), o.tensor<float>("dx", n), n, p, accumulate);
  return info.Env().Undefined();
}

// ---- cross-entropy ----

// crossEntropy({ logits, labels, loss, lse, rows, classes, ignoreIndex }) -> counted rows
TK_CPU_OP(crossEntropy) {
  Opts o(info, "crossEntropy");
  const int64_t rows = o.count("rows"), classes = o.count("classes");
  const int64_t ignore = o.integer("ignoreIndex");
  check_rows_cols("crossEntropy", rows, classes);
  const int64_t counted = cpu::cross_entropy(o.tensor<float>("logits", checked_elems(rows, classes, "crossEntropy")),
                                             o.tensor<int32_t>("labels", rows), o.tensor<float>("loss", rows),
                                             o.tensor<float>("lse", rows), rows, classes, ignore);
  return Napi::Number::New(info.Env(), static_cast<double>(counted));
}

// crossEntropyBackward({ logits, labels, lse, dloss, dlogits, rows, classes, ignoreIndex })
TK_CPU_OP(crossEntropyBackward) {
  Opts o(info, "crossEntropyBackward");
  const int64_t rows = o.count("rows"), classes = o.count("classes");
  const int64_t ignore = o.integer("ignoreIndex");
  check_rows_cols("crossEntropyBackward", rows, classes);
  const int64_t n = checked_elems(rows, classes, "crossEntropyBackward");
  cpu::cross_entropy_backward(o.tensor<float>("logits", n), o.tensor<int32_t>("labels", rows), o.tensor<float>("lse", rows),
                              o.tensor<float>("dloss", rows), o.tensor<float>("dlogits", n), rows, classes, ignore);
  return info.Env().Undefined();
}

// ---- optimizer ----

// adamw({ param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step }): in place on f32 [n]
TK_CPU_OP(adamw) {
  Opts o(info, "adamw");
  const int64_t n = o.count("n");
  const AdamWHyper h = adamw_hyper(o);
  cpu::adamw(o.tensor<float>("param", n), o.tensor<float>("grad", n), o.tensor<float>("m", n), o.tensor<float>("v", n), n, h);
  return info.Env().Undefined();
}

// ---- rotary embedding ----

// rope({ x, out, positions, invFreq, B, H, T, D, rotDim, inverse }): x [B, H, T, D], positions i32 [B, T]
TK_CPU_OP(rope) {
  Opts o(info, "rope");
  const int64_t B = o.count("B"), H = o.count("H"), T = o.count("T"), D = o.count("D");
  const int64_t rot = o.count("rotDim");
  const bool inverse = o.flag("inverse");
  TK_CHECK(rot % 2 == 0 && rot <= D, Shape, "rope: rotDim must be even and <= D (", D, ") but is ", rot);
  const int64_t n = checked_elems({B, H, T, D}, "rope");
  cpu::rope(o.tensor<float>("x", n), o.tensor<float>("out", n), o.tensor<int32_t>("positions", checked_elems(B, T, "rope positions")),
            o.tensor<float>("invFreq", rot / 2), B, H, T, D, rot, inverse);
  return info.Env().Undefined();
}
