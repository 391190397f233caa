// Cross-entropy fused with log-softmax over classes, f32 logits, i32 labels.
//
//   lse[r]  = log sum_c exp(logits[r, c])            (saved for the backward)
//   loss[r] = lse[r] - logits[r, label[r]]           (0 where label[r] == ignore_index)
// Returns the number of rows that count (label != ignore_index), the divisor of a mean loss.
// A label outside [0, classes) that is not ignore_index throws tk::Error(ERR_INDEX) naming the
// row, before anything is written. Sums accumulate in double.
#pragma once
#include <cstdint>

namespace tk::cpu {

void check_labels(const int32_t* labels, int64_t rows, int64_t classes, int64_t ignore_index);

// logits (rows, classes), labels (rows) -> loss (rows), lse (rows)
int64_t cross_entropy_reference(const float* logits, const int32_t* labels, float* loss, float* lse, int64_t rows,
                                int64_t classes, int64_t ignore_index);
int64_t cross_entropy(const float* logits, const int32_t* labels, float* loss, float* lse, int64_t rows,
                      int64_t classes, int64_t ignore_index);

// dlogits[r, c] = dloss[r] * (exp(logits[r, c] - lse[r]) - [c == label[r]]), 0 for ignored rows
void cross_entropy_backward_reference(const float* logits, const int32_t* labels, const float* lse,
                                      const float* dloss, float* dlogits, int64_t rows, int64_t classes,
                                      int64_t ignore_index);
void cross_entropy_backward(const float* logits, const int32_t* labels, const float* lse, const float* dloss,
                            float* dlogits, int64_t rows, int64_t classes, int64_t ignore_index);

}  // namespace tk::cpu
