// Bindings for convolution, pooling and batch normalization (lib/native.ts, section "vision"), f32
// NCHW, as native.cpu kernels taking one options object each. Sizes are named fields (checked by
// the kernels' *_check functions) and every tensor field is bounds-checked against its storage
// before a kernel runs. `reference` (optional, default false) runs the plain reference kernel.
#include <cmath>

#include "cpu/batchnorm.h"
#include "cpu/conv2d.h"
#include "cpu/pool.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

// N, C, H, W, O, KH, KW, strideH, strideW, padH, padW, dilationH, dilationW, groups
cpu::Conv2dShape conv_shape(const Opts& o) {
  cpu::Conv2dShape s;
  s.N = o.count("N"); s.C = o.count("C"); s.H = o.count("H"); s.W = o.count("W"); s.O = o.count("O");
  s.KH = o.count("KH"); s.KW = o.count("KW");
  s.sh = o.count("strideH"); s.sw = o.count("strideW"); s.ph = o.count("padH"); s.pw = o.count("padW");
  s.dh = o.count("dilationH"); s.dw = o.count("dilationW"); s.groups = o.count("groups");
  cpu::conv2d_check(s);
  checked_elems({s.N, s.C, s.H, s.W}, o.op());
  checked_elems({s.N, s.O, s.Ho, s.Wo}, o.op());
  return s;
}

// N, C, H, W, KH, KW, strideH, strideW, padH, padW, dilationH, dilationW
cpu::Pool2dShape pool_shape(const Opts& o) {
  cpu::Pool2dShape s;
  s.N = o.count("N"); s.C = o.count("C"); s.H = o.count("H"); s.W = o.count("W");
  s.KH = o.count("KH"); s.KW = o.count("KW");
  s.sh = o.count("strideH"); s.sw = o.count("strideW"); s.ph = o.count("padH"); s.pw = o.count("padW");
  s.dh = o.count("dilationH"); s.dw = o.count("dilationW");
  cpu::pool2d_check(s, o.op());
  checked_elems({s.N, s.C, s.H, s.W}, o.op());
  return s;
}

cpu::BatchNormShape batch_norm_shape(const Opts& o) {
  return cpu::BatchNormShape{o.count("N"), o.count("C"), o.count("HW")};
}

}  // namespace

// ---- conv2d ----

// conv2dForward({ x, w, bias | null, y, ...conv shape, reference? }): y [N, O, Ho, Wo]
TK_CPU_OP(conv2dForward) {
  Opts o(info, "conv2dForward");
  const cpu::Conv2dShape s = conv_shape(o);
  const bool reference = o.flag_or("reference", false);
  const float* x = o.tensor<float>("x", s.N * s.C * s.H * s.W);
  const float* w = o.tensor<float>("w", s.O * (s.C / s.groups) * s.KH * s.KW);
  const float* b = o.optional_tensor<float>("bias", s.O);
  float* y = o.tensor<float>("y", s.N * s.O * s.Ho * s.Wo);
  if (reference) cpu::conv2d_forward_reference(s, x, w, b, y);
  else cpu::conv2d_forward(s, x, w, b, y);
  return info.Env().Undefined();
}

// conv2dBackward({ x, w, dy, dx | null, dw | null, db | null, ...conv shape, reference? }): the non-null gradients, overwritten
TK_CPU_OP(conv2dBackward) {
  Opts o(info, "conv2dBackward");
  const cpu::Conv2dShape s = conv_shape(o);
  const bool reference = o.flag_or("reference", false);
  const int64_t nx = s.N * s.C * s.H * s.W, nw = s.O * (s.C / s.groups) * s.KH * s.KW;
  const float* x = o.tensor<float>("x", nx);
  const float* w = o.tensor<float>("w", nw);
  const float* dy = o.tensor<float>("dy", s.N * s.O * s.Ho * s.Wo);
  float* dx = o.optional_tensor<float>("dx", nx);
  float* dw = o.optional_tensor<float>("dw", nw);
  float* db = o.optional_tensor<float>("db", s.O);
  if (reference) cpu::conv2d_backward_reference(s, x, w, dy, dx, dw, db);
  else cpu::conv2d_backward(s, x, w, dy, dx, dw, db);
  return info.Env().Undefined();
}

// ---- pooling ----

// maxPool2d({ x, y, idx, ...pool shape, reference? }): idx i32 [N, C, Ho, Wo] = argmax (ih * W + iw)
TK_CPU_OP(maxPool2d) {
  Opts o(info, "maxPool2d");
  const cpu::Pool2dShape s = pool_shape(o);
  const bool reference = o.flag_or("reference", false);
  const float* x = o.tensor<float>("x", s.N * s.C * s.H * s.W);
  float* y = o.tensor<float>("y", s.N * s.C * s.Ho * s.Wo);
  int32_t* idx = o.tensor<int32_t>("idx", s.N * s.C * s.Ho * s.Wo);
  if (reference) cpu::max_pool2d_reference(s, x, y, idx);
  else cpu::max_pool2d(s, x, y, idx);
  return info.Env().Undefined();
}

// maxPool2dBackward({ dy, idx, dx, ...pool shape })
TK_CPU_OP(maxPool2dBackward) {
  Opts o(info, "maxPool2dBackward");
  const cpu::Pool2dShape s = pool_shape(o);
  const float* dy = o.tensor<float>("dy", s.N * s.C * s.Ho * s.Wo);
  const int32_t* idx = o.tensor<int32_t>("idx", s.N * s.C * s.Ho * s.Wo);
  float* dx = o.tensor<float>("dx", s.N * s.C * s.H * s.W);
  cpu::max_pool2d_backward(s, dy, idx, dx);
  return info.Env().Undefined();
}

// avgPool2d({ x, y, ...pool shape, countIncludePad, reference? })
TK_CPU_OP(avgPool2d) {
  Opts o(info, "avgPool2d");
  const cpu::Pool2dShape s = pool_shape(o);
  const bool cip = o.flag("countIncludePad");
  const bool reference = o.flag_or("reference", false);
  const float* x = o.tensor<float>("x", s.N * s.C * s.H * s.W);
  float* y = o.tensor<float>("y", s.N * s.C * s.Ho * s.Wo);
  if (reference) cpu::avg_pool2d_reference(s, x, y, cip);
  else cpu::avg_pool2d(s, x, y, cip);
  return info.Env().Undefined();
}

// avgPool2dBackward({ dy, dx, ...pool shape, countIncludePad })
TK_CPU_OP(avgPool2dBackward) {
  Opts o(info, "avgPool2dBackward");
  const cpu::Pool2dShape s = pool_shape(o);
  const bool cip = o.flag("countIncludePad");
  const float* dy = o.tensor<float>("dy", s.N * s.C * s.Ho * s.Wo);
  float* dx = o.tensor<float>("dx", s.N * s.C * s.H * s.W);
  cpu::avg_pool2d_backward(s, dy, dx, cip);
  return info.Env().Undefined();
}

namespace {
struct AdaptiveShape {
  int64_t NC, H, W, Ho, Wo;
};
AdaptiveShape adaptive_shape(const Opts& o) {
  AdaptiveShape s{o.count("NC"), o.count("H"), o.count("W"), o.count("Ho"), o.count("Wo")};
  TK_CHECK(s.H > 0 && s.W > 0 && s.Ho > 0 && s.Wo > 0, Shape, o.op(), ": expected positive sizes but received input ", s.H, "x", s.W,
           ", output ", s.Ho, "x", s.Wo);
  checked_elems({s.NC, s.H, s.W}, o.op());
  checked_elems({s.NC, s.Ho, s.Wo}, o.op());
  return s;
}
}  // namespace

// adaptiveAvgPool2d({ x, y, NC, H, W, Ho, Wo, reference? }): x [NC, H, W] -> y [NC, Ho, Wo]
TK_CPU_OP(adaptiveAvgPool2d) {
  Opts o(info, "adaptiveAvgPool2d");
  const AdaptiveShape s = adaptive_shape(o);
  const bool reference = o.flag_or("reference", false);
  const float* x = o.tensor<float>("x", s.NC * s.H * s.W);
  float* y = o.tensor<float>("y", s.NC * s.Ho * s.Wo);
  if (reference) cpu::adaptive_avg_pool2d_reference(x, y, s.NC, s.H, s.W, s.Ho, s.Wo);
  else cpu::adaptive_avg_pool2d(x, y, s.NC, s.H, s.W, s.Ho, s.Wo);
  return info.Env().Undefined();
}

// adaptiveAvgPool2dBackward({ dy, dx, NC, H, W, Ho, Wo })
TK_CPU_OP(adaptiveAvgPool2dBackward) {
  Opts o(info, "adaptiveAvgPool2dBackward");
  const AdaptiveShape s = adaptive_shape(o);
  const float* dy = o.tensor<float>("dy", s.NC * s.Ho * s.Wo);
  float* dx = o.tensor<float>("dx", s.NC * s.H * s.W);
  cpu::adaptive_avg_pool2d_backward(dy, dx, s.NC, s.H, s.W, s.Ho, s.Wo);
  return info.Env().Undefined();
}

// ---- batch norm ----

// batchNormTrain({ x, w | null, b | null, y, mean, rstd, runningMean | null, runningVar | null, N, C, HW, eps, momentum, reference? })
TK_CPU_OP(batchNormTrain) {
  Opts o(info, "batchNormTrain");
  const cpu::BatchNormShape s = batch_norm_shape(o);
  const float eps = o.finite_f32("eps"), momentum = o.finite_f32("momentum");
  const bool reference = o.flag_or("reference", false);
  const int64_t n = checked_elems({s.N, s.C, s.HW}, "batchNormTrain");
  const float* x = o.tensor<float>("x", n);
  const float* w = o.optional_tensor<float>("w", s.C);
  const float* b = o.optional_tensor<float>("b", s.C);
  float* y = o.tensor<float>("y", n);
  float* mean = o.tensor<float>("mean", s.C);
  float* rstd = o.tensor<float>("rstd", s.C);
  float* rm = o.optional_tensor<float>("runningMean", s.C);
  float* rv = o.optional_tensor<float>("runningVar", s.C);
  if (reference) cpu::batch_norm_train_reference(s, x, w, b, y, mean, rstd, rm, rv, eps, momentum);
  else cpu::batch_norm_train(s, x, w, b, y, mean, rstd, rm, rv, eps, momentum);
  return info.Env().Undefined();
}

// batchNormEval({ x, w | null, b | null, runningMean, runningVar, y, mean, rstd, N, C, HW, eps })
TK_CPU_OP(batchNormEval) {
  Opts o(info, "batchNormEval");
  const cpu::BatchNormShape s = batch_norm_shape(o);
  const float eps = o.finite_f32("eps");
  const int64_t n = checked_elems({s.N, s.C, s.HW}, "batchNormEval");
  const float* x = o.tensor<float>("x", n);
  const float* w = o.optional_tensor<float>("w", s.C);
  const float* b = o.optional_tensor<float>("b", s.C);
  const float* rm = o.tensor<float>("runningMean", s.C);
  const float* rv = o.tensor<float>("runningVar", s.C);
  float* y = o.tensor<float>("y", n);
  float* mean = o.tensor<float>("mean", s.C);
  float* rstd = o.tensor<float>("rstd", s.C);
  cpu::batch_norm_eval(s, x, w, b, rm, rv, y, mean, rstd, eps);
  return info.Env().Undefined();
}

// batchNormBackward({ x, w | null, mean, rstd, dy, dx | null, dw | null, db | null, N, C, HW, train, reference? })
TK_CPU_OP(batchNormBackward) {
  Opts o(info, "batchNormBackward");
  const cpu::BatchNormShape s = batch_norm_shape(o);
  const bool train = o.flag("train");
  const bool reference = o.flag_or("reference", false);
  const int64_t n = checked_elems({s.N, s.C, s.HW}, "batchNormBackward");
  const float* x = o.tensor<float>("x", n);
  const float* w = o.optional_tensor<float>("w", s.C);
  const float* mean = o.tensor<float>("mean", s.C);
  const float* rstd = o.tensor<float>("rstd", s.C);
  const float* dy = o.tensor<float>("dy", n);
  float* dx = o.optional_tensor<float>("dx", n);
  float* dw = o.optional_tensor<float>("dw", s.C);
  float* db = o.optional_tensor<float>("db", s.C);
  if (reference) cpu::batch_norm_backward_reference(s, x, w, mean, rstd, dy, dx, dw, db, train);
  else cpu::batch_norm_backward(s, x, w, mean, rstd, dy, dx, dw, db, train);
  return info.Env().Undefined();
}

// ---- fused LoRA convolution ----

namespace {
// the conv shape (groups 1), r >= 1 and a finite scale
cpu::Conv2dShape lora_conv_shape(const Opts& o, int64_t& r, float& scale) {
  const cpu::Conv2dShape s = conv_shape(o);
  r = o.count("r");
  scale = o.finite_f32("scale");
  TK_CHECK(s.groups == 1 && r >= 1, Value, o.op(), ": expected groups 1 and r >= 1 but received groups ", s.groups, ", r ", r);
  return s;
}
}  // namespace

// loraConv2dForward({ x, w, bias | null, a, b, y, low, ...conv shape, r, scale }): low [N, r, Ho, Wo] saved
TK_CPU_OP(loraConv2dForward) {
  Opts o(info, "loraConv2dForward");
  int64_t r = 0;
  float scale = 0;
  const cpu::Conv2dShape s = lora_conv_shape(o, r, scale);
  const int64_t K = s.C * s.KH * s.KW, ny = checked_elems({s.N, s.O, s.Ho, s.Wo}, "loraConv2dForward y");
  const float* x = o.tensor<float>("x", s.N * s.C * s.H * s.W);
  const float* w = o.tensor<float>("w", s.O * K);
  const float* bias = o.optional_tensor<float>("bias", s.O);
  const float* a = o.tensor<float>("a", checked_elems({r, K}, "loraConv2dForward a"));
  const float* b = o.tensor<float>("b", checked_elems({s.O, r}, "loraConv2dForward b"));
  float* y = o.tensor<float>("y", ny);
  float* low = o.tensor<float>("low", checked_elems({s.N, r, s.Ho, s.Wo}, "loraConv2dForward low"));
  cpu::lora_conv2d_forward(s, r, scale, x, w, bias, a, b, y, low);
  return info.Env().Undefined();
}

// loraConv2dBackward({ x, w, a, b, low, dy, dx | null, da | null, db | null, ...conv shape, r, scale })
TK_CPU_OP(loraConv2dBackward) {
  Opts o(info, "loraConv2dBackward");
  int64_t r = 0;
  float scale = 0;
  const cpu::Conv2dShape s = lora_conv_shape(o, r, scale);
  const int64_t K = s.C * s.KH * s.KW, nx = s.N * s.C * s.H * s.W;
  const float* x = o.tensor<float>("x", nx);
  const float* w = o.tensor<float>("w", s.O * K);
  const float* a = o.tensor<float>("a", checked_elems({r, K}, "loraConv2dBackward a"));
  const float* b = o.tensor<float>("b", checked_elems({s.O, r}, "loraConv2dBackward b"));
  const float* low = o.tensor<float>("low", checked_elems({s.N, r, s.Ho, s.Wo}, "loraConv2dBackward low"));
  const float* dy = o.tensor<float>("dy", s.N * s.O * s.Ho * s.Wo);
  float* dx = o.optional_tensor<float>("dx", nx);
  float* da = o.optional_tensor<float>("da", r * K);
  float* db = o.optional_tensor<float>("db", s.O * r);
  cpu::lora_conv2d_backward(s, r, scale, x, w, a, b, low, dy, dx, da, db);
  return info.Env().Undefined();
}
