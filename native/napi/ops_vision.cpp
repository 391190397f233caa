// Bindings for convolution, pooling and batch normalization (lib/native.ts, section "vision"), f32
// NCHW. Sizes arrive as one integer list per op (checked by the kernels' *_check functions)
// and every tensor argument is bounds-checked against its storage before a kernel runs.
#include <cmath>

#include "cpu/batchnorm.h"
#include "cpu/conv2d.h"
#include "cpu/pool.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

bool is_null(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && (info[i].IsNull() || info[i].IsUndefined());
}

template <typename T>
T* optional_tensor(const Napi::CallbackInfo& info, size_t i, int64_t count, const char* what) {
  return is_null(info, i) ? nullptr : tensor_arg<T>(info, i, count, what);
}

// [N, C, H, W, O, KH, KW, sh, sw, ph, pw, dh, dw, groups]
cpu::Conv2dShape conv_dims(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  std::vector<int64_t> d = ints_arg(info, i, fn);
  TK_CHECK(d.size() == 14, Value, fn, ": expected 14 sizes [N, C, H, W, O, KH, KW, sh, sw, ph, pw, dh, dw, groups] but received ", d.size());
  cpu::Conv2dShape s;
  s.N = d[0]; s.C = d[1]; s.H = d[2]; s.W = d[3]; s.O = d[4]; s.KH = d[5]; s.KW = d[6];
  s.sh = d[7]; s.sw = d[8]; s.ph = d[9]; s.pw = d[10]; s.dh = d[11]; s.dw = d[12]; s.groups = d[13];
  cpu::conv2d_check(s);
  checked_elems({s.N, s.C, s.H, s.W}, fn);
  checked_elems({s.N, s.O, s.Ho, s.Wo}, fn);
  return s;
}

// [N, C, H, W, KH, KW, sh, sw, ph, pw, dh, dw]
cpu::Pool2dShape pool_dims(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  std::vector<int64_t> d = ints_arg(info, i, fn);
  TK_CHECK(d.size() == 12, Value, fn, ": expected 12 sizes [N, C, H, W, KH, KW, sh, sw, ph, pw, dh, dw] but received ", d.size());
  cpu::Pool2dShape s;
  s.N = d[0]; s.C = d[1]; s.H = d[2]; s.W = d[3]; s.KH = d[4]; s.KW = d[5];
  s.sh = d[6]; s.sw = d[7]; s.ph = d[8]; s.pw = d[9]; s.dh = d[10]; s.dw = d[11];
  cpu::pool2d_check(s, fn);
  checked_elems({s.N, s.C, s.H, s.W}, fn);
  return s;
}

float f32_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  const double v = num_arg(info, i, what);
  TK_CHECK(std::isfinite(v), Value, what, ": expected a finite number but received ", v);
  return static_cast<float>(v);
}

}  // namespace

// ---- conv2d ----

// conv2dForward(x, xOff, w, wOff, bias | null, bOff, y, yOff, dims, reference)
TK_EXPORT(conv2dForward) {
  cpu::Conv2dShape s = conv_dims(info, 8, "conv2dForward");
  const bool reference = bool_arg(info, 9, "conv2dForward reference");
  const float* x = tensor_arg<float>(info, 0, s.N * s.C * s.H * s.W, "conv2dForward x");
  const float* w = tensor_arg<float>(info, 2, s.O * (s.C / s.groups) * s.KH * s.KW, "conv2dForward w");
  const float* b = optional_tensor<float>(info, 4, s.O, "conv2dForward bias");
  float* y = tensor_arg<float>(info, 6, s.N * s.O * s.Ho * s.Wo, "conv2dForward y");
  if (reference) cpu::conv2d_forward_reference(s, x, w, b, y);
  else cpu::conv2d_forward(s, x, w, b, y);
  return info.Env().Undefined();
}

// conv2dBackward(x, xOff, w, wOff, dy, dyOff, dx | null, dxOff, dw | null, dwOff, db | null, dbOff, dims, reference)
TK_EXPORT(conv2dBackward) {
  cpu::Conv2dShape s = conv_dims(info, 12, "conv2dBackward");
  const bool reference = bool_arg(info, 13, "conv2dBackward reference");
  const int64_t nx = s.N * s.C * s.H * s.W, nw = s.O * (s.C / s.groups) * s.KH * s.KW;
  const float* x = tensor_arg<float>(info, 0, nx, "conv2dBackward x");
  const float* w = tensor_arg<float>(info, 2, nw, "conv2dBackward w");
  const float* dy = tensor_arg<float>(info, 4, s.N * s.O * s.Ho * s.Wo, "conv2dBackward dy");
  float* dx = optional_tensor<float>(info, 6, nx, "conv2dBackward dx");
  float* dw = optional_tensor<float>(info, 8, nw, "conv2dBackward dw");
  float* db = optional_tensor<float>(info, 10, s.O, "conv2dBackward db");
  if (reference) cpu::conv2d_backward_reference(s, x, w, dy, dx, dw, db);
  else cpu::conv2d_backward(s, x, w, dy, dx, dw, db);
  return info.Env().Undefined();
}

// ---- pooling ----

// maxPool2d(x, xOff, y, yOff, idx, idxOff, dims, reference)
TK_EXPORT(maxPool2d) {
  cpu::Pool2dShape s = pool_dims(info, 6, "maxPool2d");
  const bool reference = bool_arg(info, 7, "maxPool2d reference");
  const float* x = tensor_arg<float>(info, 0, s.N * s.C * s.H * s.W, "maxPool2d x");
  float* y = tensor_arg<float>(info, 2, s.N * s.C * s.Ho * s.Wo, "maxPool2d y");
  int32_t* idx = tensor_arg<int32_t>(info, 4, s.N * s.C * s.Ho * s.Wo, "maxPool2d indices");
  if (reference) cpu::max_pool2d_reference(s, x, y, idx);
  else cpu::max_pool2d(s, x, y, idx);
  return info.Env().Undefined();
}

// maxPool2dBackward(dy, dyOff, idx, idxOff, dx, dxOff, dims)
TK_EXPORT(maxPool2dBackward) {
  cpu::Pool2dShape s = pool_dims(info, 6, "maxPool2dBackward");
  const float* dy = tensor_arg<float>(info, 0, s.N * s.C * s.Ho * s.Wo, "maxPool2dBackward dy");
  const int32_t* idx = tensor_arg<int32_t>(info, 2, s.N * s.C * s.Ho * s.Wo, "maxPool2dBackward indices");
  float* dx = tensor_arg<float>(info, 4, s.N * s.C * s.H * s.W, "maxPool2dBackward dx");
  cpu::max_pool2d_backward(s, dy, idx, dx);
  return info.Env().Undefined();
}

// avgPool2d(x, xOff, y, yOff, dims, countIncludePad, reference)
TK_EXPORT(avgPool2d) {
  cpu::Pool2dShape s = pool_dims(info, 4, "avgPool2d");
  const bool cip = bool_arg(info, 5, "avgPool2d countIncludePad");
  const bool reference = bool_arg(info, 6, "avgPool2d reference");
  const float* x = tensor_arg<float>(info, 0, s.N * s.C * s.H * s.W, "avgPool2d x");
  float* y = tensor_arg<float>(info, 2, s.N * s.C * s.Ho * s.Wo, "avgPool2d y");
  if (reference) cpu::avg_pool2d_reference(s, x, y, cip);
  else cpu::avg_pool2d(s, x, y, cip);
  return info.Env().Undefined();
}

// avgPool2dBackward(dy, dyOff, dx, dxOff, dims, countIncludePad)
TK_EXPORT(avgPool2dBackward) {
  cpu::Pool2dShape s = pool_dims(info, 4, "avgPool2dBackward");
  const bool cip = bool_arg(info, 5, "avgPool2dBackward countIncludePad");
  const float* dy = tensor_arg<float>(info, 0, s.N * s.C * s.Ho * s.Wo, "avgPool2dBackward dy");
  float* dx = tensor_arg<float>(info, 2, s.N * s.C * s.H * s.W, "avgPool2dBackward dx");
  cpu::avg_pool2d_backward(s, dy, dx, cip);
  return info.Env().Undefined();
}

// adaptiveAvgPool2d(x, xOff, y, yOff, NC, H, W, Ho, Wo, reference)
TK_EXPORT(adaptiveAvgPool2d) {
  const int64_t NC = count_arg(info, 4, "adaptiveAvgPool2d NC"), H = count_arg(info, 5, "adaptiveAvgPool2d H"),
                W = count_arg(info, 6, "adaptiveAvgPool2d W"), Ho = count_arg(info, 7, "adaptiveAvgPool2d Ho"),
                Wo = count_arg(info, 8, "adaptiveAvgPool2d Wo");
  const bool reference = bool_arg(info, 9, "adaptiveAvgPool2d reference");
  TK_CHECK(H > 0 && W > 0 && Ho > 0 && Wo > 0, Shape, "adaptiveAvgPool2d: expected positive sizes but received input ", H, "x", W, ", output ", Ho, "x", Wo);
  const float* x = tensor_arg<float>(info, 0, checked_elems({NC, H, W}, "adaptiveAvgPool2d x"), "adaptiveAvgPool2d x");
  float* y = tensor_arg<float>(info, 2, checked_elems({NC, Ho, Wo}, "adaptiveAvgPool2d y"), "adaptiveAvgPool2d y");
  if (reference) cpu::adaptive_avg_pool2d_reference(x, y, NC, H, W, Ho, Wo);
  else cpu::adaptive_avg_pool2d(x, y, NC, H, W, Ho, Wo);
  return info.Env().Undefined();
}

// adaptiveAvgPool2dBackward(dy, dyOff, dx, dxOff, NC, H, W, Ho, Wo)
TK_EXPORT(adaptiveAvgPool2dBackward) {
  const int64_t NC = count_arg(info, 4, "adaptiveAvgPool2dBackward NC"), H = count_arg(info, 5, "adaptiveAvgPool2dBackward H"),
                W = count_arg(info, 6, "adaptiveAvgPool2dBackward W"), Ho = count_arg(info, 7, "adaptiveAvgPool2dBackward Ho"),
                Wo = count_arg(info, 8, "adaptiveAvgPool2dBackward Wo");
  TK_CHECK(H > 0 && W > 0 && Ho > 0 && Wo > 0, Shape, "adaptiveAvgPool2dBackward: expected positive sizes");
  const float* dy = tensor_arg<float>(info, 0, checked_elems({NC, Ho, Wo}, "adaptiveAvgPool2dBackward dy"), "adaptiveAvgPool2dBackward dy");
  float* dx = tensor_arg<float>(info, 2, checked_elems({NC, H, W}, "adaptiveAvgPool2dBackward dx"), "adaptiveAvgPool2dBackward dx");
  cpu::adaptive_avg_pool2d_backward(dy, dx, NC, H, W, Ho, Wo);
  return info.Env().Undefined();
}

// ---- batch norm ----

// batchNormTrain(x, w | null, b | null, y, mean, rstd, runningMean | null, runningVar | null (each + offset),
//                N, C, HW, eps, momentum, reference)
TK_EXPORT(batchNormTrain) {
  cpu::BatchNormShape s{count_arg(info, 16, "batchNormTrain N"), count_arg(info, 17, "batchNormTrain C"), count_arg(info, 18, "batchNormTrain HW")};
  const float eps = f32_arg(info, 19, "batchNormTrain eps"), momentum = f32_arg(info, 20, "batchNormTrain momentum");
  const bool reference = bool_arg(info, 21, "batchNormTrain reference");
  const int64_t n = checked_elems({s.N, s.C, s.HW}, "batchNormTrain");
  const float* x = tensor_arg<float>(info, 0, n, "batchNormTrain x");
  const float* w = optional_tensor<float>(info, 2, s.C, "batchNormTrain weight");
  const float* b = optional_tensor<float>(info, 4, s.C, "batchNormTrain bias");
  float* y = tensor_arg<float>(info, 6, n, "batchNormTrain y");
  float* mean = tensor_arg<float>(info, 8, s.C, "batchNormTrain mean");
  float* rstd = tensor_arg<float>(info, 10, s.C, "batchNormTrain rstd");
  float* rm = optional_tensor<float>(info, 12, s.C, "batchNormTrain running_mean");
  float* rv = optional_tensor<float>(info, 14, s.C, "batchNormTrain running_var");
  if (reference) cpu::batch_norm_train_reference(s, x, w, b, y, mean, rstd, rm, rv, eps, momentum);
  else cpu::batch_norm_train(s, x, w, b, y, mean, rstd, rm, rv, eps, momentum);
  return info.Env().Undefined();
}

// batchNormEval(x, w | null, b | null, runningMean, runningVar, y, mean, rstd (each + offset), N, C, HW, eps)
TK_EXPORT(batchNormEval) {
  cpu::BatchNormShape s{count_arg(info, 16, "batchNormEval N"), count_arg(info, 17, "batchNormEval C"), count_arg(info, 18, "batchNormEval HW")};
  const float eps = f32_arg(info, 19, "batchNormEval eps");
  const int64_t n = checked_elems({s.N, s.C, s.HW}, "batchNormEval");
  const float* x = tensor_arg<float>(info, 0, n, "batchNormEval x");
  const float* w = optional_tensor<float>(info, 2, s.C, "batchNormEval weight");
  const float* b = optional_tensor<float>(info, 4, s.C, "batchNormEval bias");
  const float* rm = tensor_arg<float>(info, 6, s.C, "batchNormEval running_mean");
  const float* rv = tensor_arg<float>(info, 8, s.C, "batchNormEval running_var");
  float* y = tensor_arg<float>(info, 10, n, "batchNormEval y");
  float* mean = tensor_arg<float>(info, 12, s.C, "batchNormEval mean");
  float* rstd = tensor_arg<float>(info, 14, s.C, "batchNormEval rstd");
  cpu::batch_norm_eval(s, x, w, b, rm, rv, y, mean, rstd, eps);
  return info.Env().Undefined();
}

// batchNormBackward(x, w | null, mean, rstd, dy, dx | null, dw | null, db | null (each + offset), N, C, HW, train, reference)
TK_EXPORT(batchNormBackward) {
  cpu::BatchNormShape s{count_arg(info, 16, "batchNormBackward N"), count_arg(info, 17, "batchNormBackward C"), count_arg(info, 18, "batchNormBackward HW")};
  const bool train = bool_arg(info, 19, "batchNormBackward train");
  const bool reference = bool_arg(info, 20, "batchNormBackward reference");
  const int64_t n = checked_elems({s.N, s.C, s.HW}, "batchNormBackward");
  const float* x = tensor_arg<float>(info, 0, n, "batchNormBackward x");
  const float* w = optional_tensor<float>(info, 2, s.C, "batchNormBackward weight");
  const float* mean = tensor_arg<float>(info, 4, s.C, "batchNormBackward mean");
  const float* rstd = tensor_arg<float>(info, 6, s.C, "batchNormBackward rstd");
  const float* dy = tensor_arg<float>(info, 8, n, "batchNormBackward dy");
  float* dx = optional_tensor<float>(info, 10, n, "batchNormBackward dx");
  float* dw = optional_tensor<float>(info, 12, s.C, "batchNormBackward dw");
  float* db = optional_tensor<float>(info, 14, s.C, "batchNormBackward db");
  if (reference) cpu::batch_norm_backward_reference(s, x, w, mean, rstd, dy, dx, dw, db, train);
  else cpu::batch_norm_backward(s, x, w, mean, rstd, dy, dx, dw, db, train);
  return info.Env().Undefined();
}

// ---- fused LoRA convolution ----

// loraConv2dForward(x, xOff, w, wOff, bias | null, bOff, a, aOff, b, bbOff, y, yOff, low, lowOff, dims, r, scale)
TK_EXPORT(loraConv2dForward) {
  cpu::Conv2dShape s = conv_dims(info, 14, "loraConv2dForward");
  const int64_t r = count_arg(info, 15, "loraConv2dForward r");
  const float scale = f32_arg(info, 16, "loraConv2dForward scale");
  TK_CHECK(s.groups == 1 && r >= 1, Value, "loraConv2dForward: expected groups 1 and r >= 1 but received groups ", s.groups, ", r ", r);
  const int64_t K = s.C * s.KH * s.KW, ny = checked_elems({s.N, s.O, s.Ho, s.Wo}, "loraConv2dForward y");
  const float* x = tensor_arg<float>(info, 0, s.N * s.C * s.H * s.W, "loraConv2dForward x");
  const float* w = tensor_arg<float>(info, 2, s.O * K, "loraConv2dForward w");
  const float* bias = optional_tensor<float>(info, 4, s.O, "loraConv2dForward bias");
  const float* a = tensor_arg<float>(info, 6, checked_elems({r, K}, "loraConv2dForward a"), "loraConv2dForward a");
  const float* b = tensor_arg<float>(info, 8, checked_elems({s.O, r}, "loraConv2dForward b"), "loraConv2dForward b");
  float* y = tensor_arg<float>(info, 10, ny, "loraConv2dForward y");
  float* low = tensor_arg<float>(info, 12, checked_elems({s.N, r, s.Ho, s.Wo}, "loraConv2dForward low"), "loraConv2dForward low");
  cpu::lora_conv2d_forward(s, r, scale, x, w, bias, a, b, y, low);
  return info.Env().Undefined();
}

// loraConv2dBackward(x, xOff, w, wOff, a, aOff, b, bbOff, low, lowOff, dy, dyOff, dx | null, dxOff, da | null, daOff,
//                    db | null, dbOff, dims, r, scale)
TK_EXPORT(loraConv2dBackward) {
  cpu::Conv2dShape s = conv_dims(info, 18, "loraConv2dBackward");
  const int64_t r = count_arg(info, 19, "loraConv2dBackward r");
  const float scale = f32_arg(info, 20, "loraConv2dBackward scale");
  TK_CHECK(s.groups == 1 && r >= 1, Value, "loraConv2dBackward: expected groups 1 and r >= 1");
  const int64_t K = s.C * s.KH * s.KW, nx = s.N * s.C * s.H * s.W;
  const float* x = tensor_arg<float>(info, 0, nx, "loraConv2dBackward x");
  const float* w = tensor_arg<float>(info, 2, s.O * K, "loraConv2dBackward w");
  const float* a = tensor_arg<float>(info, 4, checked_elems({r, K}, "loraConv2dBackward a"), "loraConv2dBackward a");
  const float* b = tensor_arg<float>(info, 6, checked_elems({s.O, r}, "loraConv2dBackward b"), "loraConv2dBackward b");
  const float* low = tensor_arg<float>(info, 8, checked_elems({s.N, r, s.Ho, s.Wo}, "loraConv2dBackward low"), "loraConv2dBackward low");
  const float* dy = tensor_arg<float>(info, 10, s.N * s.O * s.Ho * s.Wo, "loraConv2dBackward dy");
  float* dx = optional_tensor<float>(info, 12, nx, "loraConv2dBackward dx");
  float* da = optional_tensor<float>(info, 14, r * K, "loraConv2dBackward da");
  float* db = optional_tensor<float>(info, 16, s.O * r, "loraConv2dBackward db");
  cpu::lora_conv2d_backward(s, r, scale, x, w, a, b, low, dy, dx, da, db);
  return info.Env().Undefined();
}
