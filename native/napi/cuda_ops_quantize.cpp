// native.cuda: NF4/FP4 quantization of a weight on a CUDA device (the CUDA twins of ops_nf4.cpp's
// nf4Quantize and nf4DoubleQuantize: same options, same checks). Quantization runs once per
// weight when a model is loaded, so these copy the weight to the host, run the CPU kernel
// (bitsandbytes' rounding, ties and double-quantization offset exactly as there) and copy the
// packed codes and absmax back: results bit-identical to the CPU's, no second implementation of
// the quantizer to keep in step. Compiled to nothing without TUNEKIT_WITH_CUDA.
#include "cuda_ops.h"
#ifdef TUNEKIT_WITH_CUDA
#include <vector>

#include "cpu/nf4.h"

using namespace tk;
using namespace tk::napi;

namespace {

template <typename T>
void to_device(T* p, const std::vector<T>& h) {
  cuda::copy_to_device(p, h.data(), h.size() * sizeof(T));
}

}  // namespace

// nf4Quantize({ w, n, blocksize, quantType, packed, absmax })
TK_CUDA_OP(nf4Quantize) {
  Opts o(info, "nf4Quantize", Backend::Cuda);
  const Quant4QuantizeArgs r = quant4_quantize_args(o);
  use_call_device(o);
  const std::vector<float> hw = to_host(r.w, r.n);
  std::vector<uint8_t> hp(static_cast<size_t>((r.n + 1) / 2));
  std::vector<float> ha(static_cast<size_t>(quant4_blocks(r.n, r.blocksize)));
  if (r.type == Quant4Type::NF4) cpu::nf4_quantize(hw.data(), r.n, r.blocksize, hp.data(), ha.data());
  else cpu::fp4_quantize(hw.data(), r.n, r.blocksize, hp.data(), ha.data());
  to_device(r.packed, hp);
  to_device(r.absmax, ha);
  return info.Env().Undefined();
}

// nf4DoubleQuantize({ absmax, nblocks, q, nested }) -> offset
TK_CUDA_OP(nf4DoubleQuantize) {
  Opts o(info, "nf4DoubleQuantize", Backend::Cuda);
  const int64_t nb = o.count("nblocks");
  const float* absmax = o.tensor<float>("absmax", nb);
  uint8_t* q = o.tensor<uint8_t>("q", nb);
  float* nested = o.tensor<float>("nested", (nb + 255) / 256);
  use_call_device(o);
  const std::vector<float> ha = to_host(absmax, nb);
  std::vector<uint8_t> hq(static_cast<size_t>(nb));
  std::vector<float> hn(static_cast<size_t>((nb + 255) / 256));
  float offset = 0.0f;
  cpu::nf4_double_quantize_absmax(ha.data(), nb, hq.data(), hn.data(), &offset);
  to_device(q, hq);
  to_device(nested, hn);
  return Napi::Number::New(info.Env(), offset);
}

#endif  // TUNEKIT_WITH_CUDA
