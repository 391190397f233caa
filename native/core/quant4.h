// The 4-bit code values of bitsandbytes' NF4 and FP4 (REFERENCE.md: hard-coded fp32 values,
// index = code), shared by the CPU and CUDA backends.
#pragma once

namespace tk {

inline constexpr float kNf4Codebook[16] = {-1.0f,
                                           -0.6961928009986877f,
                                           -0.5250730514526367f,
                                           -0.39491748809814453f,
                                           -0.28444138169288635f,
                                           -0.18477343022823334f,
                                           -0.09105003625154495f,
                                           0.0f,
                                           0.07958029955625534f,
                                           0.16093020141124725f,
                                           0.24611230194568634f,
                                           0.33791524171829224f,
                                           0.44070982933044434f,
                                           0.5626170039176941f,
                                           0.7229568362236023f,
                                           1.0f};

// FP4 (bitsandbytes bit order: sign, then 3 bits that are not sorted by magnitude) / 12.
inline constexpr float kFp4Codebook[16] = {0.0f,         0.0625f / 12, 8.0f / 12,  12.0f / 12,  4.0f / 12,  6.0f / 12,
                                           2.0f / 12,    3.0f / 12,    -0.0f,      -0.0625f / 12, -8.0f / 12, -12.0f / 12,
                                           -4.0f / 12,   -6.0f / 12,   -2.0f / 12, -3.0f / 12};

}  // namespace tk
