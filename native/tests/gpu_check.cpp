// tunekit_gpu_check: the Node-free check of the CUDA backend (scripts/gpu-check.sh runs it).
//
//   1. For every CUDA op: random inputs of awkward sizes, the CPU kernel (the reference loops
//      where they exist) and the CUDA kernel, max error against the op's tolerance, gradients
//      included. One line per case: PASS/FAIL, error, tolerance.
//   2. Timings (cudaEvent) of the CUDA kernels at the sizes the targets name, printed as
//      `BENCH <key> <ms> <value> <unit>` lines that scripts/gpu-check.sh sets beside PyTorch.
//
// Exit status: 0 when every check passes, 1 when one fails, 2 when there is no CUDA device
// ("no CUDA device: <reason>"). Options: --no-bench (checks only), --bench-only.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#if __has_include("cpu/adalora.h")
#include "cpu/adalora.h"
#define TK_HAVE_CPU_ADALORA 1
#endif
#include "cpu/adamw.h"
#include "cpu/attention.h"
#include "cpu/cross_entropy.h"
#include "cpu/elementwise.h"
#include "cpu/gemm.h"
#include "cpu/lora.h"
#include "cpu/nf4.h"
#include "cpu/norm.h"
#include "cpu/softmax.h"
#include "cuda/device_runtime.h"
#include "cuda/kernels.h"

using namespace tk;
namespace cu = tk::cuda;

#include "gpu_check_util.h"
using namespace tk::gpu_check;

// the checks of the training step's data movement, dropout, embedding, RoPE, reductions, f32
// GEMM and f32 LoRA (gpu_check_step_ops.cpp)
void check_step_ops();

namespace {

// ---- checks ---------------------------------------------------------------------------------

void check_gemm() {
  std::printf("bf16 GEMM (mma.sync), all transpose combinations\n");
  struct Case { int64_t M, N, K; int pad; float alpha, beta; };
  const Case cases[] = {{1, 1, 1, 0, 1, 0},       {7, 33, 129, 0, 1, 0},     {129, 7, 33, 3, 1, 0},
                        {33, 129, 1000, 0, 1.5f, 0.5f}, {1000, 129, 7, 1, 1, 0}, {257, 300, 1031, 0, 1, 1},
                        {128, 128, 64, 0, 1, 0},  {1, 1000, 1024, 0, 1, 0}};
  for (const Case& c : cases)
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 2, tb = t & 1;
      std::string name = std::string("gemm_bf16 ") + (ta ? "T" : "N") + (tb ? "T" : "N") + " " + dims({c.M, c.N, c.K}) +
                         (c.pad ? " ld+" + std::to_string(c.pad) : "") + (c.beta != 0 ? " beta" : "");
      guarded(name, [&] {
        tk::GemmShape s;
        s.transA = ta;
        s.transB = tb;
        s.M = c.M;
        s.N = c.N;
        s.K = c.K;
        s.lda = (ta ? c.M : c.K) + c.pad;
        s.ldb = (tb ? c.K : c.N) + c.pad;
        s.ldc = c.N + c.pad;
        s.alpha = c.alpha;
        s.beta = c.beta;
        const int64_t arows = ta ? c.K : c.M, brows = tb ? c.N : c.K;
        U16 A = to_bf16(randf(arows * s.lda)), B = to_bf16(randf(brows * s.ldb));
        F C0 = randf(c.M * s.ldc);
        F ref = C0;
        cpu::gemm_bf16_reference(cpu_shape(s), A.data(), B.data(), ref.data());
        Dev<uint16_t> dA(A), dB(B);
        Dev<float> dC(C0);
        cu::gemm_bf16(s, dA.p(), dB.p(), dC.p());
        check(name, dC.host(), ref, 2e-5 * std::sqrt(static_cast<double>(c.K) + 1) + 1e-6);
      });
    }
  guarded("f32_to_bf16 / bf16_to_f32 round trip", [&] {
    F x = randf(1000 + 7, -1e4f, 1e4f);
    x[0] = 0.0f;
    x[1] = -0.0f;
    x[2] = INFINITY;
    x[3] = 3.0e38f;
    U16 ref = to_bf16(x);
    Dev<float> dx(x);
    Dev<uint16_t> db(x.size());
    cu::f32_to_bf16(dx.p(), db.p(), static_cast<int64_t>(x.size()));
    U16 got = db.host();
    size_t bad = 0;
    for (size_t i = 0; i < x.size(); ++i) bad += got[i] != ref[i];
    Dev<float> back(x.size());
    cu::bf16_to_f32(db.p(), back.p(), static_cast<int64_t>(x.size()));
    report("f32_to_bf16 bit-exact (mismatches)", static_cast<double>(bad), 0);
    check("bf16_to_f32 exact", back.host(), from_bf16(ref), 0);
  });
}

struct Nf4Host {
  std::vector<uint8_t> packed;
  F absmax;
  int64_t N, K;
  int bs;
  cpu::Quant4Type type;
  cpu::Nf4Weight weight() const { return cpu::Nf4Weight{packed.data(), absmax.data(), N, K, bs, type}; }
};
Nf4Host make_nf4(int64_t N, int64_t K, int bs, cpu::Quant4Type type = cpu::Quant4Type::NF4) {
  Nf4Host h{std::vector<uint8_t>((N * K + 1) / 2), F((N * K + bs - 1) / bs), N, K, bs, type};
  F w = randf(N * K);
  if (type == cpu::Quant4Type::NF4) cpu::nf4_quantize(w.data(), N * K, bs, h.packed.data(), h.absmax.data());
  else cpu::fp4_quantize(w.data(), N * K, bs, h.packed.data(), h.absmax.data());
  return h;
}

void check_nf4() {
  std::printf("NF4 / FP4: dequantize, GEMV, dequant-GEMM\n");
  struct Case { int64_t N, K; int bs; cpu::Quant4Type type; };
  const Case cases[] = {{7, 64, 64, cpu::Quant4Type::NF4},     {33, 129, 64, cpu::Quant4Type::NF4},
                        {129, 1000, 64, cpu::Quant4Type::NF4}, {1000, 4096, 64, cpu::Quant4Type::NF4},
                        {300, 512, 128, cpu::Quant4Type::FP4}, {1, 7, 32, cpu::Quant4Type::NF4},
                        {257, 1024, 64, cpu::Quant4Type::NF4}};
  for (const Case& c : cases) {
    const std::string tag = std::string(c.type == cpu::Quant4Type::NF4 ? "nf4 " : "fp4 ") + dims({c.N, c.K}) +
                            " bs" + std::to_string(c.bs);
    guarded(tag, [&] {
      Nf4Host h = make_nf4(c.N, c.K, c.bs, c.type);
      Dev<uint8_t> dp(h.packed);
      Dev<float> da(h.absmax);
      cpu::Nf4Weight hw = h.weight();
      cpu::Nf4Weight dw = hw;
      dw.packed = dp.p();
      dw.absmax = da.p();
      const int64_t n = c.N * c.K;
      // dequantize (bit-exact: same f32 product)
      F ref(n);
      if (c.type == cpu::Quant4Type::NF4) cpu::nf4_dequantize(h.packed.data(), h.absmax.data(), n, c.bs, ref.data());
      else cpu::fp4_dequantize(h.packed.data(), h.absmax.data(), n, c.bs, ref.data());
      Dev<float> dq(n);
      cu::nf4_dequantize(dw, dq.p());
      check("dequantize " + tag, dq.host(), ref, 0);
      Dev<uint16_t> dqb(n);
      cu::nf4_dequantize_bf16(dw, dqb.p());
      check("dequantize_bf16 " + tag, from_bf16(dqb.host()), from_bf16(to_bf16(ref)), 0);
      // GEMV for 1 and 3 tokens (and 6: two passes), f32 x, against the CPU's nf4_gemm
      for (int64_t M : {1, 3, 6}) {
        F X = randf(M * c.K), Y0 = randf(M * c.N), Yref = Y0;
        cpu::nf4_gemm(X.data(), M, c.K, hw, Yref.data(), c.N, 0.5f);
        Dev<float> dX(X), dY(Y0);
        cu::nf4_gemv(dX.p(), M, c.K, dw, dY.p(), c.N, 0.5f);
        check("gemv M=" + std::to_string(M) + " beta " + tag, dY.host(), Yref, 1e-5 * std::sqrt(double(c.K)) + 1e-6);
      }
      // dequant-GEMM forward and dx, bf16 activations, against gemm_bf16_reference on the bf16 weight
      U16 Wb = to_bf16(ref);
      for (int64_t M : {1, 33, 300}) {
        U16 X = to_bf16(randf(M * c.K));
        F Yref(M * c.N);
        tk::GemmShape s;
        s.transB = true;
        s.M = M;
        s.N = c.N;
        s.K = c.K;
        s.lda = c.K;
        s.ldb = c.K;
        s.ldc = c.N;
        cpu::gemm_bf16_reference(cpu_shape(s), X.data(), Wb.data(), Yref.data());
        Dev<uint16_t> dX(X);
        Dev<float> dY(M * c.N);
        cu::nf4_gemm_bf16(dX.p(), M, c.K, dw, dY.p(), c.N);
        check("dequant-GEMM Y=XW^T M=" + std::to_string(M) + " " + tag, dY.host(), Yref,
              2e-5 * std::sqrt(double(c.K)) + 1e-6);
        U16 G = to_bf16(randf(M * c.N));
        F dXref(M * c.K);
        tk::GemmShape t;
        t.M = M;
        t.N = c.K;
        t.K = c.N;
        t.lda = c.N;
        t.ldb = c.K;
        t.ldc = c.K;
        cpu::gemm_bf16_reference(cpu_shape(t), G.data(), Wb.data(), dXref.data());
        Dev<uint16_t> dG(G);
        Dev<float> ddX(M * c.K);
        cu::nf4_gemm_dx_bf16(dG.p(), M, c.N, dw, ddX.p(), c.K);
        check("dequant-GEMM dX=dYW M=" + std::to_string(M) + " " + tag, ddX.host(), dXref,
              2e-5 * std::sqrt(double(c.N)) + 1e-6);
      }
    });
  }
}

void check_lora() {
  std::printf("fused linear + LoRA (bf16 operands, f32 results)\n");
  struct Case { int64_t M, in, out, r; bool w_in_out, bias, merge; };
  const Case cases[] = {{33, 129, 65, 8, false, true, true}, {7, 64, 1000, 16, true, false, false},
                        {1, 1, 1, 1, false, true, false},    {300, 1024, 257, 4, false, true, true}};
  for (const Case& c : cases) {
    const std::string tag = dims({c.M, c.in, c.out, c.r}) + (c.w_in_out ? " w_in_out" : "") + (c.merge ? " merge_dx" : "");
    guarded("lora " + tag, [&] {
      cpu::LoraShape s{c.M, c.in, c.out, c.r, 2.0f, c.w_in_out};
      // bf16-representable inputs so the f32 reference sees the same operands
      F x = from_bf16(to_bf16(randf(c.M * c.in))), xd = from_bf16(to_bf16(randf(c.M * c.in)));
      F w = from_bf16(to_bf16(randf(c.in * c.out))), a = from_bf16(to_bf16(randf(c.r * c.in)));
      F b = from_bf16(to_bf16(randf(c.out * c.r))), bias = randf(c.out), dy = randf(c.M * c.out);
      if (c.merge) xd = x;
      F y(c.M * c.out), xa(c.M * c.r);
      cpu::lora_linear_forward_reference(s, x.data(), xd.data(), w.data(), c.bias ? bias.data() : nullptr, a.data(),
                                         b.data(), y.data(), xa.data());
      Dev<uint16_t> dx_(to_bf16(x)), dxd(to_bf16(xd)), dw(to_bf16(w)), da(to_bf16(a)), db(to_bf16(b));
      Dev<float> dbias(bias), dyv(c.M * c.out), dxa(c.M * c.r);
      cu::lora_linear_forward_bf16(s, dx_.p(), dxd.p(), dw.p(), c.bias ? dbias.p() : nullptr, da.p(), db.p(), dyv.p(),
                                   dxa.p());
      const double tol = 1e-2;  // xa is rounded to bf16 before the B product (2^-8 relative)
      check("lora forward y " + tag, dyv.host(), y, tol);
      check("lora forward xa " + tag, dxa.host(), xa, 1e-4);
      F gx(c.M * c.in), gxd(c.M * c.in), ga(c.r * c.in), gb(c.out * c.r);
      cpu::lora_linear_backward_reference(s, dy.data(), xd.data(), w.data(), a.data(), b.data(), xa.data(), gx.data(),
                                          c.merge ? nullptr : gxd.data(), ga.data(), gb.data(), c.merge);
      Dev<float> ddy(dy), dgx(c.M * c.in), dgxd(c.M * c.in), dga(c.r * c.in), dgb(c.out * c.r), dxa_ref(xa);
      cu::lora_linear_backward_bf16(s, ddy.p(), dxd.p(), dw.p(), da.p(), db.p(), dxa_ref.p(), dgx.p(),
                                    c.merge ? nullptr : dgxd.p(), dga.p(), dgb.p(), c.merge);
      // dy is rounded to bf16 for the tensor cores: tolerance at bf16 level
      check("lora backward dx " + tag, dgx.host(), gx, tol);
      if (!c.merge) check("lora backward dxd " + tag, dgxd.host(), gxd, tol);
      check("lora backward dA " + tag, dga.host(), ga, tol);
      check("lora backward dB " + tag, dgb.host(), gb, tol);
    });
  }
}

void check_attention() {
  std::printf("flash-style attention forward / backward (f32)\n");
  struct Case { int64_t B, Hq, Hkv, Tq, Tk, D; bool causal, mask; };
  const Case cases[] = {{2, 4, 2, 7, 33, 64, true, true},    {1, 2, 2, 129, 129, 32, true, false},
                        {1, 1, 1, 1, 1000, 128, false, true}, {1, 3, 1, 33, 40, 7, false, false},
                        {2, 2, 1, 65, 65, 256, true, true},   {1, 8, 8, 1, 1, 64, false, false}};
  for (const Case& c : cases) {
    const std::string tag = dims({c.B, c.Hq, c.Hkv, c.Tq, c.Tk, c.D}) + (c.causal ? " causal" : "") + (c.mask ? " mask" : "");
    guarded("attention " + tag, [&] {
      cpu::AttentionShape s{c.B, c.Hq, c.Hkv, c.Tq, c.Tk, c.D, 1.0f / std::sqrt(static_cast<float>(c.D)), c.causal};
      const int64_t qn = c.B * c.Hq * c.Tq * c.D, kn = c.B * c.Hkv * c.Tk * c.D, ln = c.B * c.Hq * c.Tq;
      F q = randf(qn, -2, 2), k = randf(kn, -2, 2), v = randf(kn), dout = randf(qn);
      std::vector<int32_t> mask(c.B * c.Tk, 1);
      if (c.mask) {
        std::bernoulli_distribution keep(0.8);
        for (auto& m : mask) m = keep(rng) ? 1 : 0;
        if (c.B > 1)
          for (int64_t j = 0; j < c.Tk; ++j) mask[c.Tk + j] = 0;  // batch 1 fully masked
      }
      const int32_t* hm = c.mask ? mask.data() : nullptr;
      F out(qn), lse(ln);
      cpu::attention_forward_reference(s, q.data(), k.data(), v.data(), hm, out.data(), lse.data());
      Dev<float> dq_(q), dk_(k), dv_(v), dout_(dout), dO(qn), dL(ln);
      Dev<int32_t> dm(mask);
      cu::attention_forward_f32(s, dq_.p(), dk_.p(), dv_.p(), c.mask ? dm.p() : nullptr, dO.p(), dL.p());
      check("attention forward out " + tag, dO.host(), out, 2e-5);
      check("attention forward lse " + tag, dL.host(), lse, 2e-5);
      F gq(qn), gk(kn), gv(kn);
      cpu::attention_backward_reference(s, q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(), hm,
                                        gq.data(), gk.data(), gv.data());
      Dev<float> gq_(qn), gk_(kn), gv_(kn);
      cu::attention_backward_f32(s, dq_.p(), dk_.p(), dv_.p(), dO.p(), dL.p(), dout_.p(), c.mask ? dm.p() : nullptr,
                                 gq_.p(), gk_.p(), gv_.p());
      check("attention backward dq " + tag, gq_.host(), gq, 5e-5);
      check("attention backward dk " + tag, gk_.host(), gk, 5e-5);
      check("attention backward dv " + tag, gv_.host(), gv, 5e-5);
    });
  }
}

void check_elementwise() {
  std::printf("element-wise\n");
  const int64_t rows = 33, cols = 129;
  F a = randf(rows * cols, -3, 3), brow = randf(cols, -3, 3), bfull = randf(rows * cols, -3, 3);
  brow[5] = 0.0f;
  a[7] = NAN;
  for (int op = 0; op < cpu::kNumBinaryOps; ++op) {
    const auto bop = static_cast<cpu::BinaryOp>(op);
    const std::string name = std::string("binary ") + cpu::binary_op_name(bop);
    guarded(name, [&] {
      const int64_t shape[2] = {rows, cols}, as[2] = {cols, 1}, bs_row[2] = {0, 1}, bs_t[2] = {1, rows};
      F ref(rows * cols);
      Dev<float> da(a), dbr(brow), dbf(bfull), dout(rows * cols);
      cpu::binary_reference(bop, a.data(), brow.data(), ref.data(), 2, shape, as, bs_row);
      cu::binary(bop, da.p(), dbr.p(), dout.p(), 2, shape, as, bs_row);
      check(name + " row broadcast " + dims({rows, cols}), dout.host(), ref, 1e-6);
      // b read transposed (general strides path)
      cpu::binary_reference(bop, a.data(), bfull.data(), ref.data(), 2, shape, as, bs_t);
      cu::binary(bop, da.p(), dbf.p(), dout.p(), 2, shape, as, bs_t);
      check(name + " strided " + dims({rows, cols}), dout.host(), ref, 1e-6);
    });
  }
  const int64_t n = 1000 + 33;
  for (int op = 0; op < cpu::kNumUnaryOps; ++op) {
    const auto uop = static_cast<cpu::UnaryOp>(op);
    const std::string name = std::string("unary ") + cpu::unary_op_name(uop);
    guarded(name, [&] {
      const bool positive = uop == cpu::UnaryOp::Log || uop == cpu::UnaryOp::Sqrt || uop == cpu::UnaryOp::Rsqrt ||
                            uop == cpu::UnaryOp::PowScalar;
      F x = positive ? randf(n, 0.1f, 4.0f) : randf(n, -6.0f, 6.0f);
      const float param = uop == cpu::UnaryOp::PowScalar ? 1.7f : 0.75f;
      F y(n), dy = randf(n), dx(n);
      cpu::unary_reference(uop, x.data(), y.data(), n, param);
      Dev<float> dxv(x), dyv(n), ddy(dy), ddx(n);
      cu::unary(uop, dxv.p(), dyv.p(), n, param);
      check(name + " forward n=" + std::to_string(n), dyv.host(), y, 2e-6);
      cpu::unary_backward_reference(uop, x.data(), y.data(), dy.data(), dx.data(), n, param);
      Dev<float> yref(y);
      cu::unary_backward(uop, dxv.p(), yref.p(), ddy.p(), ddx.p(), n, param);
      check(name + " backward", ddx.host(), dx, 1e-5);
    });
  }
}

void check_softmax_norm_ce() {
  std::printf("softmax, layer/RMS norm, cross-entropy, AdamW, AdaLoRA\n");
  for (int64_t rows : {1, 7, 33})
    for (int64_t cols : {1, 129, 5000})
      for (bool lg : {false, true}) {
        const std::string tag = std::string(lg ? "log_softmax " : "softmax ") + dims({rows, cols});
        guarded(tag, [&] {
          F x = randf(rows * cols, -10, 10), y(rows * cols), dy = randf(rows * cols), dx(rows * cols);
          cpu::softmax_reference(x.data(), y.data(), rows, cols, lg);
          Dev<float> dxv(x), dyv(rows * cols), ddy(dy), ddx(rows * cols);
          cu::softmax(dxv.p(), dyv.p(), rows, cols, lg);
          check(tag + " forward", dyv.host(), y, 1e-6);
          cpu::softmax_backward_reference(y.data(), dy.data(), dx.data(), rows, cols, lg);
          Dev<float> yref(y);
          cu::softmax_backward(yref.p(), ddy.p(), ddx.p(), rows, cols, lg);
          check(tag + " backward", ddx.host(), dx, 1e-5);
        });
      }
  for (int64_t rows : {1, 33, 1000})
    for (int64_t cols : {7, 129, 1031}) {
      const std::string tag = dims({rows, cols});
      guarded("norms " + tag, [&] {
        F x = randf(rows * cols, -2, 3), w = randf(cols), b = randf(cols), dy = randf(rows * cols);
        F y(rows * cols), mean(rows), rstd(rows);
        cpu::layer_norm_reference(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), rows, cols, 1e-5f);
        Dev<float> dxv(x), dw(w), db(b), ddy(dy), dyv(rows * cols), dmean(rows), drstd(rows);
        cu::layer_norm(dxv.p(), dw.p(), db.p(), dyv.p(), dmean.p(), drstd.p(), rows, cols, 1e-5f);
        check("layer_norm forward y " + tag, dyv.host(), y, 2e-6);
        check("layer_norm forward rstd " + tag, drstd.host(), rstd, 2e-6);
        F gx(rows * cols), gw(cols), gb(cols);
        cpu::layer_norm_backward_reference(x.data(), w.data(), mean.data(), rstd.data(), dy.data(), gx.data(), gw.data(),
                                           gb.data(), rows, cols);
        Dev<float> dgx(rows * cols), dgw(cols), dgb(cols);
        cu::layer_norm_backward(dxv.p(), dw.p(), dmean.p(), drstd.p(), ddy.p(), dgx.p(), dgw.p(), dgb.p(), rows, cols);
        check("layer_norm backward dx " + tag, dgx.host(), gx, 1e-5);
        check("layer_norm backward dw " + tag, dgw.host(), gw, 1e-5);
        check("layer_norm backward db " + tag, dgb.host(), gb, 1e-5);
        cpu::rms_norm_reference(x.data(), w.data(), y.data(), rstd.data(), rows, cols, 1e-6f);
        cu::rms_norm(dxv.p(), dw.p(), dyv.p(), drstd.p(), rows, cols, 1e-6f);
        check("rms_norm forward y " + tag, dyv.host(), y, 2e-6);
        cpu::rms_norm_backward_reference(x.data(), w.data(), rstd.data(), dy.data(), gx.data(), gw.data(), rows, cols);
        Dev<float> rref(rstd);
        cu::rms_norm_backward(dxv.p(), dw.p(), rref.p(), ddy.p(), dgx.p(), dgw.p(), rows, cols);
        check("rms_norm backward dx " + tag, dgx.host(), gx, 1e-5);
        check("rms_norm backward dw " + tag, dgw.host(), gw, 1e-5);
      });
    }
  for (int64_t rows : {1, 33, 1000})
    for (int64_t classes : {7, 32000}) {
      if (rows * classes > 4000000) continue;
      const std::string tag = "cross_entropy " + dims({rows, classes});
      guarded(tag, [&] {
        F logits = randf(rows * classes, -8, 8), dloss = randf(rows);
        std::vector<int32_t> labels(rows);
        std::uniform_int_distribution<int32_t> lab(0, static_cast<int32_t>(classes - 1));
        for (size_t i = 0; i < labels.size(); ++i) labels[i] = i % 5 == 3 ? -100 : lab(rng);
        F loss(rows), lse(rows), dl(rows * classes);
        const int64_t cnt = cpu::cross_entropy_reference(logits.data(), labels.data(), loss.data(), lse.data(), rows,
                                                         classes, -100);
        Dev<float> dlog(logits), dloss_(dloss), dlo(rows), dlse(rows), ddl(rows * classes);
        Dev<int32_t> dlab(labels);
        const int64_t got = cu::cross_entropy(dlog.p(), dlab.p(), dlo.p(), dlse.p(), rows, classes, -100);
        report(tag + " counted rows (|diff|)", std::fabs(double(got - cnt)), 0);
        check(tag + " loss", dlo.host(), loss, 2e-6);
        check(tag + " lse", dlse.host(), lse, 2e-6);
        cpu::cross_entropy_backward_reference(logits.data(), labels.data(), lse.data(), dloss.data(), dl.data(), rows,
                                              classes, -100);
        cu::cross_entropy_backward(dlog.p(), dlab.p(), dlse.p(), dloss_.p(), ddl.p(), rows, classes, -100);
        check(tag + " backward", ddl.host(), dl, 1e-6);
      });
    }
  guarded("cross_entropy bad label -> ERR_INDEX", [&] {
    F logits = randf(3 * 5);
    std::vector<int32_t> labels = {1, 7, -100};
    Dev<float> dlog(logits), dlo(3), dlse(3);
    Dev<int32_t> dlab(labels);
    bool ok = false;
    try {
      cu::cross_entropy(dlog.p(), dlab.p(), dlo.p(), dlse.p(), 3, 5, -100);
    } catch (const Error& e) {
      ok = e.code() == ErrorCode::Index && std::string(e.what()).find("row 1") != std::string::npos;
    }
    report("cross_entropy bad label -> ERR_INDEX naming row 1", ok ? 0 : 1, 0);
  });
  guarded("adamw", [&] {
    const int64_t n = 1000 + 7;
    F p = randf(n), g = randf(n), m = randf(n, 0, 0.1f), v = randf(n, 0, 0.01f);
    cpu::AdamWHyper h;
    h.lr = 3e-4;
    h.weight_decay = 0.1;
    h.step = 3;
    F pr = p, mr = m, vr = v;
    cpu::adamw(pr.data(), g.data(), mr.data(), vr.data(), n, h);
    Dev<float> dp(p), dg(g), dm(m), dv(v);
    cu::adamw(dp.p(), dg.p(), dm.p(), dv.p(), n, h);
    check("adamw param n=1007", dp.host(), pr, 1e-6);
    check("adamw m", dm.host(), mr, 1e-6);
    check("adamw v", dv.host(), vr, 1e-6);
  });
#ifdef TK_HAVE_CPU_ADALORA
  guarded("adalora_update", [&] {
    cpu::AdaloraShape s{8, 129, 33};
    tk::AdaloraShape cs{s.r, s.in, s.out};
    F a = randf(s.r * s.in), ga = randf(s.r * s.in), e = randf(s.r), ge = randf(s.r), b = randf(s.out * s.r),
      gb = randf(s.out * s.r);
    F ia = randf(s.r * s.in, 0, 1), ua = randf(s.r * s.in, 0, 1), ie = randf(s.r, 0, 1), ue = randf(s.r, 0, 1),
      ib = randf(s.out * s.r, 0, 1), ub = randf(s.out * s.r, 0, 1);
    F ia2 = ia, ua2 = ua, ie2 = ie, ue2 = ue, ib2 = ib, ub2 = ub;
    cpu::AdaloraState hs{ia2.data(), ua2.data(), ie2.data(), ue2.data(), ib2.data(), ub2.data()};
    cpu::adalora_update_f32(s, a.data(), ga.data(), e.data(), ge.data(), b.data(), gb.data(), hs, 0.85f, 0.85f);
    Dev<float> da(a), dga(ga), de(e), dge(ge), db(b), dgb(gb), dia(ia), dua(ua), die(ie), due(ue), dib(ib), dub(ub);
    tk::AdaloraState ds{dia.p(), dua.p(), die.p(), due.p(), dib.p(), dub.p()};
    cu::adalora_update_f32(cs, da.p(), dga.p(), de.p(), nullptr, db.p(), dgb.p(), ds, 0.85f, 0.85f);
    // E got no gradient on the device side: recompute the CPU state for that case
    F ie3 = ie, ue3 = ue;
    for (int64_t i = 0; i < s.r; ++i) {
      const float c1 = static_cast<float>(1.0 - static_cast<double>(0.85f));
      const float m = 0.85f * ie3[i] + c1 * 0.0f;
      ue3[i] = 0.85f * ue3[i] + c1 * std::fabs(0.0f - m);
      ie3[i] = m;
    }
    check("adalora ibar_a", dia.host(), ia2, 1e-6);
    check("adalora unc_a", dua.host(), ua2, 1e-6);
    check("adalora ibar_e (null grad)", die.host(), ie3, 1e-6);
    check("adalora unc_e (null grad)", due.host(), ue3, 1e-6);
    check("adalora ibar_b", dib.host(), ib2, 1e-6);
    check("adalora unc_b", dub.host(), ub2, 1e-6);
  });
#endif
}

void check_allocator() {
  std::printf("caching allocator\n");
  guarded("allocator", [&] {
    cu::release_cached();
    const cu::AllocatorStats s0 = cu::allocator_stats();
    void* p = cu::device_alloc(1000);
    cu::device_free(p);
    void* q = cu::device_alloc(900);  // same 1024-byte class: reused
    const cu::AllocatorStats s1 = cu::allocator_stats();
    cu::device_free(q);
    report("allocator reuses a freed block of the same class", (q == p && s1.cache_hits > s0.cache_hits) ? 0 : 1, 0);
    cu::release_cached();
    report("allocator release_cached empties the cache", cu::allocator_stats().cached_bytes == 0 ? 0 : 1, 0);
    bool oom = false;
    try {
      cu::device_alloc(size_t(1) << 50);
    } catch (const Error& e) {
      oom = e.code() == ErrorCode::OOM;
    }
    report("allocator: 1 PiB request -> ERR_OOM", oom ? 0 : 1, 0);
  });
}

// ---- timings ---------------------------------------------------------------------------------

template <typename Fn>
double time_ms(Fn fn, int iters = 20) {
  for (int i = 0; i < 3; ++i) fn();
  cu::synchronize();
  cu::EventTimer t;
  t.start();
  for (int i = 0; i < iters; ++i) fn();
  return t.stop_ms() / iters;
}

void bench_line(const char* key, double ms, double value, const char* unit) {
  std::printf("BENCH %-26s %10.4f ms %10.1f %s\n", key, ms, value, unit);
  std::fflush(stdout);
}

void bench() {
  std::printf("\ntimings (cudaEvent, mean of 20 after 3 warm-up runs)\n");
  {
    const int64_t n = 4096;
    Dev<uint16_t> A(to_bf16(randf(n * n))), B(to_bf16(randf(n * n)));
    Dev<float> C(n * n);
    for (int t = 0; t < 2; ++t) {
      tk::GemmShape s;
      s.transB = t == 1;
      s.M = s.N = s.K = n;
      s.lda = s.ldb = s.ldc = n;
      const double ms = time_ms([&] { cu::gemm_bf16(s, A.p(), B.p(), C.p()); });
      bench_line(t ? "gemm_bf16_4096_nt" : "gemm_bf16_4096_nn", ms, 2.0 * n * n * n / (ms * 1e-3) / 1e9, "GFLOP/s");
    }
  }
  for (int64_t n : {4096, 8192}) {
    Nf4Host h{std::vector<uint8_t>(n * n / 2), F(n * n / 64), n, n, 64, cpu::Quant4Type::NF4};
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : h.packed) b = static_cast<uint8_t>(byte(rng));
    h.absmax = randf(h.absmax.size(), 0.01f, 0.1f);
    Dev<uint8_t> dp(h.packed);
    Dev<float> da(h.absmax), X(randf(4 * n)), Y(4 * n);
    cpu::Nf4Weight w = h.weight();
    w.packed = dp.p();
    w.absmax = da.p();
    const double bytes = n * n / 2.0 + n * n / 64 * 4.0 + 2.0 * n * 4;
    const double ms = time_ms([&] { cu::nf4_gemv(X.p(), 1, n, w, Y.p(), n); }, 50);
    const std::string key = "nf4_gemv_" + std::to_string(n);
    bench_line(key.c_str(), ms, bytes / (ms * 1e-3) / 1e9, "GB/s");
    Dev<uint16_t> Xb(to_bf16(randf(4096 * n)));
    Dev<float> Yb(4096 * n);
    const double gms = time_ms([&] { cu::nf4_gemm_bf16(Xb.p(), 4096, n, w, Yb.p(), n); }, 10);
    const std::string gkey = "nf4_gemm_4096tok_" + std::to_string(n);
    bench_line(gkey.c_str(), gms, 2.0 * 4096 * n * n / (gms * 1e-3) / 1e9, "GFLOP/s");
    // our bf16 GEMM at batch 1 (for reference beside the NF4 GEMV)
    Dev<uint16_t> Wb(to_bf16(randf(n * n)));
    tk::GemmShape s;
    s.transB = true;
    s.M = 1;
    s.N = s.K = n;
    s.lda = s.ldb = s.ldc = n;
    const double bms = time_ms([&] { cu::gemm_bf16(s, Xb.p(), Wb.p(), Yb.p()); }, 50);
    const std::string bkey = "gemm_bf16_m1_" + std::to_string(n);
    bench_line(bkey.c_str(), bms, (2.0 * n * n + 2.0 * n) / (bms * 1e-3) / 1e9, "GB/s");
  }
  {
    cpu::AttentionShape s{4, 16, 16, 1024, 1024, 64, 0.125f, true};
    const int64_t qn = s.B * s.Hq * s.Tq * s.D;
    Dev<float> q(randf(qn)), k(randf(qn)), v(randf(qn)), o(qn), l(s.B * s.Hq * s.Tq), dq(qn), dk(qn), dv(qn);
    const double flops = 4.0 * s.B * s.Hq * s.Tq * s.Tk * s.D / 2;  // causal: half the scores
    const double fms = time_ms([&] { cu::attention_forward_f32(s, q.p(), k.p(), v.p(), nullptr, o.p(), l.p()); }, 10);
    bench_line("attention_fwd_b4h16t1024d64", fms, flops / (fms * 1e-3) / 1e9, "GFLOP/s");
    const double bms = time_ms(
        [&] { cu::attention_backward_f32(s, q.p(), k.p(), v.p(), o.p(), l.p(), o.p(), nullptr, dq.p(), dk.p(), dv.p()); }, 5);
    bench_line("attention_bwd_b4h16t1024d64", bms, 2.5 * flops / (bms * 1e-3) / 1e9, "GFLOP/s");
  }
  {
    const int64_t rows = 4096, cols = 4096;
    Dev<float> x(randf(rows * cols)), w(randf(cols)), b(randf(cols)), y(rows * cols), m(rows), r(rows);
    const double ms = time_ms([&] { cu::layer_norm(x.p(), w.p(), b.p(), y.p(), m.p(), r.p(), rows, cols, 1e-5f); });
    bench_line("layer_norm_4096x4096", ms, 2.0 * rows * cols * 4 / (ms * 1e-3) / 1e9, "GB/s");
    const double sms = time_ms([&] { cu::softmax(x.p(), y.p(), rows, cols, false); });
    bench_line("softmax_4096x4096", sms, 2.0 * rows * cols * 4 / (sms * 1e-3) / 1e9, "GB/s");
    const double gms = time_ms([&] { cu::unary(cpu::UnaryOp::GeluTanh, x.p(), y.p(), rows * cols, 0.0f); });
    bench_line("gelu_tanh_16M", gms, 2.0 * rows * cols * 4 / (gms * 1e-3) / 1e9, "GB/s");
  }
  {
    const int64_t rows = 4096, classes = 32000;
    Dev<float> logits(randf(rows * classes)), loss(rows), lse(rows);
    std::vector<int32_t> lab(rows, 17);
    Dev<int32_t> labels(lab);
    const double ms = time_ms([&] { cu::cross_entropy(logits.p(), labels.p(), loss.p(), lse.p(), rows, classes, -100); }, 10);
    bench_line("cross_entropy_4096x32000", ms, 1.0 * rows * classes * 4 / (ms * 1e-3) / 1e9, "GB/s");
  }
  {
    const int64_t n = int64_t(64) << 20;
    Dev<float> p(randf(n)), g(randf(n)), m(n), v(n);
    cu::fill_zero(m.p(), n * 4);
    cu::fill_zero(v.p(), n * 4);
    cpu::AdamWHyper h;
    const double ms = time_ms([&] { cu::adamw(p.p(), g.p(), m.p(), v.p(), n, h); });
    bench_line("adamw_64M", ms, 7.0 * n * 4 / (ms * 1e-3) / 1e9, "GB/s");
  }
  const cu::AllocatorStats st = cu::allocator_stats();
  std::printf("allocator: peak %.1f MiB, %llu cudaMalloc calls, %llu cache hits\n",
              st.peak_allocated_bytes / 1048576.0, static_cast<unsigned long long>(st.malloc_calls),
              static_cast<unsigned long long>(st.cache_hits));
}

}  // namespace

int main(int argc, char** argv) {
  bool do_checks = true, do_bench = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--no-bench")) do_bench = false;
    if (!std::strcmp(argv[i], "--bench-only")) do_checks = false;
  }
  const cu::DeviceInfo info = cu::device_info();
  if (info.devices == 0) {
    std::printf("%s\n", info.reason.c_str());
    return 2;
  }
  try {
    cu::require_device(0);
  } catch (const std::exception& e) {
    std::printf("no CUDA device: %s\n", e.what());
    return 2;
  }
  std::printf("device 0: %s (sm_%d%d, %.1f GiB)\n", info.name.c_str(), info.cc_major, info.cc_minor,
              info.total_bytes / 1073741824.0);
  if (do_checks) {
    check_gemm();
    check_nf4();
    check_lora();
    check_attention();
    check_elementwise();
    check_softmax_norm_ce();
    check_allocator();
    check_step_ops();
    std::printf("\nchecks: %d, failed: %d\n", checks, failures);
  }
  if (do_bench) {
    try {
      bench();
    } catch (const std::exception& e) {
      std::printf("bench failed: %s\n", e.what());
      ++failures;
    }
  }
  std::printf("RESULT %s\n", failures == 0 ? "PASS" : "FAIL");
  return failures == 0 ? 0 : 1;
}
