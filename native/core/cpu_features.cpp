#include "cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace tk {

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures r;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    r.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    r.avx512f = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    r.avx512_bf16 = r.avx512f && __builtin_cpu_supports("avx512bf16");
#endif
    // TUNEKIT_ISA=avx2|portable caps dispatch (for testing each path on one machine).
    if (const char* cap = std::getenv("TUNEKIT_ISA")) {
      if (std::strcmp(cap, "avx2") == 0) {
        r.avx512f = r.avx512_bf16 = false;
      } else if (std::strcmp(cap, "portable") == 0) {
        r = CpuFeatures{};
      }
    }
    return r;
  }();
  return f;
}

}  // namespace tk
