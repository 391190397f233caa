// Run-time CPU feature detection for kernel dispatch.
#pragma once

namespace tk {

struct CpuFeatures {
  bool avx2_fma = false;
  bool avx512f = false;   // with avx512bw/dq/vl
  bool avx512_bf16 = false;
};

const CpuFeatures& cpu_features();

}  // namespace tk
