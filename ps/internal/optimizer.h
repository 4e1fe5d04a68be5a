#pragma once
// Per-row optimizer kernels. Each updates one row in place; the weights and
// the optimizer state of a row are contiguous in the table's slab:
//   SGD:           [w(dim)]
//   SGD+momentum:  [w(dim) | velocity(dim)]
//   Adagrad:       [w(dim) | accumulator(dim)]
//   Adam:          [w(dim) | m(dim) | v(dim) | step(1, uint32 bits)]
// Weight decay is L2, added to the gradient: g' = g + weight_decay * w.
// The formulas follow PyTorch's SGD (dampening 0, no Nesterov), Adagrad
// (lr_decay 0) and Adam (not AMSGrad). Adam keeps a per-row step count for
// its bias correction, so rows that are rarely touched are not under-corrected
// as they would be with a global step (that is what sparse/lazy Adam does).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace phalanx::ps::internal {

// Hyper-parameters in the form the kernels use.
struct OptimizerParams {
  float lr = 0.1f;
  float weight_decay = 0.0f;
  float momentum = 0.0f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-8f;
  double log_beta1 = 0.0;  // ln(beta1), ln(beta2): beta^t = exp(t ln beta)
  double log_beta2 = 0.0;
};

// w <- w - lr * g'
inline void SgdStep(const OptimizerParams& p, size_t dim, const float* g, float* row) {
  const float lr = p.lr, wd = p.weight_decay;
  for (size_t c = 0; c < dim; ++c) row[c] -= lr * (g[c] + wd * row[c]);
}

// v <- momentum * v + g';  w <- w - lr * v
inline void MomentumStep(const OptimizerParams& p, size_t dim, const float* g, float* row) {
  float* v = row + dim;
  const float lr = p.lr, wd = p.weight_decay, mu = p.momentum;
  for (size_t c = 0; c < dim; ++c) {
    const float gc = g[c] + wd * row[c];
    v[c] = mu * v[c] + gc;
    row[c] -= lr * v[c];
  }
}

// a <- a + g'^2;  w <- w - lr * g' / (sqrt(a) + eps)
inline void AdagradStep(const OptimizerParams& p, size_t dim, const float* g, float* row) {
  float* a = row + dim;
  const float lr = p.lr, wd = p.weight_decay, eps = p.epsilon;
  for (size_t c = 0; c < dim; ++c) {
    const float gc = g[c] + wd * row[c];
    a[c] += gc * gc;
    row[c] -= lr * gc / (std::sqrt(a[c]) + eps);
  }
}

// t <- t + 1;  m <- b1 m + (1 - b1) g';  v <- b2 v + (1 - b2) g'^2
// w <- w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
inline void AdamStep(const OptimizerParams& p, size_t dim, const float* g, float* row) {
  float* m = row + dim;
  float* v = row + 2 * dim;
  uint32_t t;
  std::memcpy(&t, row + 3 * dim, sizeof(t));
  if (t != UINT32_MAX) ++t;  // saturates; by then the correction is exactly 1
  std::memcpy(row + 3 * dim, &t, sizeof(t));
  const float bc1 = static_cast<float>(1.0 - std::exp(t * p.log_beta1));
  const float bc2 = static_cast<float>(1.0 - std::exp(t * p.log_beta2));
  const float step = p.lr / bc1;
  const float inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
  const float b1 = p.beta1, b2 = p.beta2, eps = p.epsilon, wd = p.weight_decay;
  for (size_t c = 0; c < dim; ++c) {
    const float gc = g[c] + wd * row[c];
    m[c] = b1 * m[c] + (1.0f - b1) * gc;
    v[c] = b2 * v[c] + (1.0f - b2) * gc * gc;
    row[c] -= step * m[c] / (std::sqrt(v[c]) * inv_sqrt_bc2 + eps);
  }
}

}  // namespace phalanx::ps::internal
