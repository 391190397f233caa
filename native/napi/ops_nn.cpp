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

using namespace tk;
using namespace tk::napi;

namespace {

// rows x cols where a row needs at least one column (statistics of an empty row are undefined)
void check_rows_cols(const char* fn, int64_t rows, int64_t cols) {
  TK_CHECK(rows == 0 || cols > 0, Shape, fn, ": rows of ", cols, " columns (need >= 1)");
}

float eps_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  double eps = num_arg(info, i, what);
  TK_CHECK(std::isfinite(eps) && eps >= 0, Value, what, ": expected a finite eps >= 0 but received ", eps);
  return static_cast<float>(eps);
}

}  // namespace

// ---- softmax ----

// softmax(x, xOff, y, yOff, rows, cols, log)
TK_EXPORT(softmax) {
  int64_t rows = count_arg(info, 4, "softmax rows"), cols = count_arg(info, 5, "softmax cols");
  bool log = bool_arg(info, 6, "softmax log");
  int64_t n = checked_elems(rows, cols, "softmax");
  const float* x = tensor_arg<float>(info, 0, n, "softmax x");
  float* y = tensor_arg<float>(info, 2, n, "softmax y");
  cpu::softmax(x, y, rows, cols, log);
  return info.Env().Undefined();
}

// softmaxBackward(y, yOff, dy, dyOff, dx, dxOff, rows, cols, log)
TK_EXPORT(softmaxBackward) {
  int64_t rows = count_arg(info, 6, "softmaxBackward rows"), cols = count_arg(info, 7, "softmaxBackward cols");
  bool log = bool_arg(info, 8, "softmaxBackward log");
  int64_t n = checked_elems(rows, cols, "softmaxBackward");
  const float* y = tensor_arg<float>(info, 0, n, "softmaxBackward y");
  const float* dy = tensor_arg<float>(info, 2, n, "softmaxBackward dy");
  float* dx = tensor_arg<float>(info, 4, n, "softmaxBackward dx");
  cpu::softmax_backward(y, dy, dx, rows, cols, log);
  return info.Env().Undefined();
}

// ---- norms ----

// layerNorm(x, w, b, y, mean, rstd (each handle + offset), rows, cols, eps)
TK_EXPORT(layerNorm) {
  int64_t rows = count_arg(info, 12, "layerNorm rows"), cols = count_arg(info, 13, "layerNorm cols");
  float eps = eps_arg(info, 14, "layerNorm eps");
  check_rows_cols("layerNorm", rows, cols);
  int64_t n = checked_elems(rows, cols, "layerNorm");
  const float* x = tensor_arg<float>(info, 0, n, "layerNorm x");
  const float* w = tensor_arg<float>(info, 2, cols, "layerNorm weight");
  const float* b = tensor_arg<float>(info, 4, cols, "layerNorm bias");
  float* y = tensor_arg<float>(info, 6, n, "layerNorm y");
  float* mean = tensor_arg<float>(info, 8, rows, "layerNorm mean");
  float* rstd = tensor_arg<float>(info, 10, rows, "layerNorm rstd");
  cpu::layer_norm(x, w, b, y, mean, rstd, rows, cols, eps);
  return info.Env().Undefined();
}

// layerNormBackward(x, w, mean, rstd, dy, dx, dw, db (each handle + offset), rows, cols, needWeightGrad)
TK_EXPORT(layerNormBackward) {
  int64_t rows = count_arg(info, 16, "layerNormBackward rows"), cols = count_arg(info, 17, "layerNormBackward cols");
  bool need = bool_arg(info, 18, "layerNormBackward needWeightGrad");
  check_rows_cols("layerNormBackward", rows, cols);
  int64_t n = checked_elems(rows, cols, "layerNormBackward");
  const float* x = tensor_arg<float>(info, 0, n, "layerNormBackward x");
  const float* w = tensor_arg<float>(info, 2, cols, "layerNormBackward weight");
  const float* mean = tensor_arg<float>(info, 4, rows, "layerNormBackward mean");
  const float* rstd = tensor_arg<float>(info, 6, rows, "layerNormBackward rstd");
  const float* dy = tensor_arg<float>(info, 8, n, "layerNormBackward dy");
  float* dx = tensor_arg<float>(info, 10, n, "layerNormBackward dx");
  float* dw = need ? tensor_arg<float>(info, 12, cols, "layerNormBackward dw") : nullptr;
  float* db = need ? tensor_arg<float>(info, 14, cols, "layerNormBackward db") : nullptr;
  cpu::layer_norm_backward(x, w, mean, rstd, dy, dx, dw, db, rows, cols);
  return info.Env().Undefined();
}

// rmsNorm(x, w, y, rstd (each handle + offset), rows, cols, eps)
TK_EXPORT(rmsNorm) {
  int64_t rows = count_arg(info, 8, "rmsNorm rows"), cols = count_arg(info, 9, "rmsNorm cols");
  float eps = eps_arg(info, 10, "rmsNorm eps");
  check_rows_cols("rmsNorm", rows, cols);
  int64_t n = checked_elems(rows, cols, "rmsNorm");
  const float* x = tensor_arg<float>(info, 0, n, "rmsNorm x");
  const float* w = tensor_arg<float>(info, 2, cols, "rmsNorm weight");
  float* y = tensor_arg<float>(info, 4, n, "rmsNorm y");
  float* rstd = tensor_arg<float>(info, 6, rows, "rmsNorm rstd");
  cpu::rms_norm(x, w, y, rstd, rows, cols, eps);
  return info.Env().Undefined();
}

// rmsNormBackward(x, w, rstd, dy, dx, dw (each handle + offset), rows, cols, needWeightGrad)
TK_EXPORT(rmsNormBackward) {
  int64_t rows = count_arg(info, 12, "rmsNormBackward rows"), cols = count_arg(info, 13, "rmsNormBackward cols");
  bool need = bool_arg(info, 14, "rmsNormBackward needWeightGrad");
  check_rows_cols("rmsNormBackward", rows, cols);
  int64_t n = checked_elems(rows, cols, "rmsNormBackward");
  const float* x = tensor_arg<float>(info, 0, n, "rmsNormBackward x");
  const float* w = tensor_arg<float>(info, 2, cols, "rmsNormBackward weight");
  const float* rstd = tensor_arg<float>(info, 4, rows, "rmsNormBackward rstd");
  const float* dy = tensor_arg<float>(info, 6, n, "rmsNormBackward dy");
  float* dx = tensor_arg<float>(info, 8, n, "rmsNormBackward dx");
  float* dw = need ? tensor_arg<float>(info, 10, cols, "rmsNormBackward dw") : nullptr;
  cpu::rms_norm_backward(x, w, rstd, dy, dx, dw, rows, cols);
  return info.Env().Undefined();
}

// ---- embedding ----

// gatherRows(table, tOff, idx, idxOff, out, outOff, n, rowSize, numRows)
TK_EXPORT(gatherRows) {
  int64_t n = count_arg(info, 6, "gatherRows n"), row = count_arg(info, 7, "gatherRows rowSize");
  int64_t num = count_arg(info, 8, "gatherRows numRows");
  const float* table = tensor_arg<float>(info, 0, checked_elems(num, row, "gatherRows table"), "gatherRows table");
  const int32_t* idx = tensor_arg<int32_t>(info, 2, n, "gatherRows idx");
  float* out = tensor_arg<float>(info, 4, checked_elems(n, row, "gatherRows out"), "gatherRows out");
  cpu::gather_rows(table, idx, out, n, row, num);  // ERR_INDEX on a bad id, before any write
  return info.Env().Undefined();
}

// scatterAddRows(dOut, dOff, idx, idxOff, dTable, dtOff, n, rowSize, numRows)
TK_EXPORT(scatterAddRows) {
  int64_t n = count_arg(info, 6, "scatterAddRows n"), row = count_arg(info, 7, "scatterAddRows rowSize");
  int64_t num = count_arg(info, 8, "scatterAddRows numRows");
  const float* d_out = tensor_arg<float>(info, 0, checked_elems(n, row, "scatterAddRows dOut"), "scatterAddRows dOut");
  const int32_t* idx = tensor_arg<int32_t>(info, 2, n, "scatterAddRows idx");
  float* d_table = tensor_arg<float>(info, 4, checked_elems(num, row, "scatterAddRows dTable"), "scatterAddRows dTable");
  cpu::scatter_add_rows(d_out, idx, d_table, n, row, num);
  return info.Env().Undefined();
}

// ---- dropout ----

namespace {
float dropout_p_arg(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  double p = num_arg(info, i, "dropout p");
  TK_CHECK(p >= 0 && p < 1, Value, fn, ": expected a drop probability p in [0, 1) but received ", p);
  return static_cast<float>(p);
}
}  // namespace

// dropout(x, xOff, y, yOff, mask, maskOff, n, p, seed)
TK_EXPORT(dropout) {
  int64_t n = count_arg(info, 6, "dropout n");
  float p = dropout_p_arg(info, 7, "dropout");
  int64_t seed = int_arg(info, 8, "dropout seed");
  const float* x = tensor_arg<float>(info, 0, n, "dropout x");
  float* y = tensor_arg<float>(info, 2, n, "dropout y");
  uint8_t* mask = tensor_arg<uint8_t>(info, 4, n, "dropout mask");
  cpu::dropout(x, y, mask, n, p, static_cast<uint64_t>(seed));
  return info.Env().Undefined();
}

// dropoutBackward(dy, dyOff, mask, maskOff, dx, dxOff, n, p, accumulate?) : dx (+)= dy * mask / (1 - p)
TK_EXPORT(dropoutBackward) {
  int64_t n = count_arg(info, 6, "dropoutBackward n");
  float p = dropout_p_arg(info, 7, "dropoutBackward");
  const bool accumulate = info.Length() > 8 && info[8].IsBoolean() && info[8].As<Napi::Boolean>().Value();
  const float* dy = tensor_arg<float>(info, 0, n, "dropoutBackward dy");
  const uint8_t* mask = tensor_arg<uint8_t>(info, 2, n, "dropoutBackward mask");
  float* dx = tensor_arg<float>(info, 4, n, "dropoutBackward dx");
  cpu::dropout_backward(dy, mask, dx, n, p, accumulate);
  return info.Env().Undefined();
}

// ---- cross-entropy ----

// crossEntropy(logits, lOff, labels, labOff, loss, lossOff, lse, lseOff, rows, classes, ignoreIndex) -> counted rows
TK_EXPORT(crossEntropy) {
  int64_t rows = count_arg(info, 8, "crossEntropy rows"), classes = count_arg(info, 9, "crossEntropy classes");
  int64_t ignore = int_arg(info, 10, "crossEntropy ignoreIndex");
  check_rows_cols("crossEntropy", rows, classes);
  const float* logits = tensor_arg<float>(info, 0, checked_elems(rows, classes, "crossEntropy"), "crossEntropy logits");
  const int32_t* labels = tensor_arg<int32_t>(info, 2, rows, "crossEntropy labels");
  float* loss = tensor_arg<float>(info, 4, rows, "crossEntropy loss");
  float* lse = tensor_arg<float>(info, 6, rows, "crossEntropy lse");
  int64_t counted = cpu::cross_entropy(logits, labels, loss, lse, rows, classes, ignore);
  return Napi::Number::New(info.Env(), static_cast<double>(counted));
}

// crossEntropyBackward(logits, labels, lse, dloss, dlogits (each handle + offset), rows, classes, ignoreIndex)
TK_EXPORT(crossEntropyBackward) {
  int64_t rows = count_arg(info, 10, "crossEntropyBackward rows");
  int64_t classes = count_arg(info, 11, "crossEntropyBackward classes");
  int64_t ignore = int_arg(info, 12, "crossEntropyBackward ignoreIndex");
  check_rows_cols("crossEntropyBackward", rows, classes);
  int64_t n = checked_elems(rows, classes, "crossEntropyBackward");
  const float* logits = tensor_arg<float>(info, 0, n, "crossEntropyBackward logits");
  const int32_t* labels = tensor_arg<int32_t>(info, 2, rows, "crossEntropyBackward labels");
  const float* lse = tensor_arg<float>(info, 4, rows, "crossEntropyBackward lse");
  const float* dloss = tensor_arg<float>(info, 6, rows, "crossEntropyBackward dloss");
  float* dlogits = tensor_arg<float>(info, 8, n, "crossEntropyBackward dlogits");
  cpu::cross_entropy_backward(logits, labels, lse, dloss, dlogits, rows, classes, ignore);
  return info.Env().Undefined();
}

// ---- optimizer ----

// adamw(param, grad, m, v (each handle + offset), n, lr, beta1, beta2, eps, weightDecay, step)
TK_EXPORT(adamw) {
  int64_t n = count_arg(info, 8, "adamw n");
  cpu::AdamWHyper h;
  h.lr = num_arg(info, 9, "adamw lr");
  h.beta1 = num_arg(info, 10, "adamw beta1");
  h.beta2 = num_arg(info, 11, "adamw beta2");
  h.eps = num_arg(info, 12, "adamw eps");
  h.weight_decay = num_arg(info, 13, "adamw weightDecay");
  h.step = int_arg(info, 14, "adamw step");
  // the same checks torch.optim.AdamW makes
  TK_CHECK(std::isfinite(h.lr) && h.lr >= 0, Value, "adamw: expected lr >= 0 but received ", h.lr);
  TK_CHECK(h.beta1 >= 0 && h.beta1 < 1, Value, "adamw: expected beta1 in [0, 1) but received ", h.beta1);
  TK_CHECK(h.beta2 >= 0 && h.beta2 < 1, Value, "adamw: expected beta2 in [0, 1) but received ", h.beta2);
  TK_CHECK(std::isfinite(h.eps) && h.eps >= 0, Value, "adamw: expected eps >= 0 but received ", h.eps);
  TK_CHECK(std::isfinite(h.weight_decay) && h.weight_decay >= 0, Value,
           "adamw: expected weightDecay >= 0 but received ", h.weight_decay);
  TK_CHECK(h.step >= 1, Value, "adamw: step is 1-based but received ", h.step);
  float* p = tensor_arg<float>(info, 0, n, "adamw param");
  const float* g = tensor_arg<float>(info, 2, n, "adamw grad");
  float* m = tensor_arg<float>(info, 4, n, "adamw m");
  float* v = tensor_arg<float>(info, 6, n, "adamw v");
  cpu::adamw(p, g, m, v, n, h);
  return info.Env().Undefined();
}

// ---- rotary embedding ----

// rope(x, out, positions, invFreq (each handle + offset), B, Hn, T, D, rotDim, inverse)
TK_EXPORT(rope) {
  int64_t B = count_arg(info, 8, "rope B"), H = count_arg(info, 9, "rope Hn");
  int64_t T = count_arg(info, 10, "rope T"), D = count_arg(info, 11, "rope D");
  int64_t rot = count_arg(info, 12, "rope rotDim");
  bool inverse = bool_arg(info, 13, "rope inverse");
  TK_CHECK(rot % 2 == 0 && rot <= D, Shape, "rope: rotDim must be even and <= D (", D, ") but is ", rot);
  int64_t n = checked_elems(checked_elems(checked_elems(B, H, "rope"), T, "rope"), D, "rope");
  const float* x = tensor_arg<float>(info, 0, n, "rope x");
  float* out = tensor_arg<float>(info, 2, n, "rope out");
  const int32_t* pos = tensor_arg<int32_t>(info, 4, checked_elems(B, T, "rope positions"), "rope positions");
  const float* inv_freq = tensor_arg<float>(info, 6, rot / 2, "rope invFreq");
  cpu::rope(x, out, pos, inv_freq, B, H, T, D, rot, inverse);
  return info.Env().Undefined();
}
