#pragma once
// Per-row optimizer kernels. Each updates one row in place: its weights w
// (dim floats) and its optimizer state s, which the table keeps in a slab of
// its own (ps/internal/partition.h):
//   SGD:           s = []
//   SGD+momentum:  s = [velocity(dim)]
//   Adagrad:       s = [accumulator(dim)]
//   Adam:          s = [m(dim) | v(dim) | step(1, uint32 bits)]
// A stored row (snapshots, EmbeddingTable::ForEach/Import) is [w | s].
// g, w and s never overlap; saying so (__restrict) is what lets the compiler
// vectorise the run-time-width loops without an overlap check. Fixed-width
// rows are staged through locals (Staged) instead: once a kernel is inlined
// into the table's pipeline GCC drops the parameters' __restrict, and the SGD
// and momentum steps for 16 floats compiled to 64 and 96 scalar operations
// (cache-resident updates: 60 -> 73-84 M rows/s with staging).
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
  // Adam's bias corrections for steps t < adam_table_size:
  // adam_table[2t] = lr / (1 - beta1^t), adam_table[2t+1] = 1 / sqrt(1 - beta2^t).
  // Two std::exp per row cost as much as the rest of a 16-float Adam step;
  // the table (AdamBiasTable) turns them into one L1/L2 hit. Null: compute.
  const float* adam_table = nullptr;
  uint32_t adam_table_size = 0;
};

// The per-step Adam factors (lr / (1 - beta1^t), 1 / sqrt(1 - beta2^t)),
// computed exactly as AdamStep does without a table.
inline void AdamFactors(const OptimizerParams& p, uint32_t t, float* step, float* inv_sqrt_bc2) {
  const float bc1 = static_cast<float>(1.0 - std::exp(t * p.log_beta1));
  const float bc2 = static_cast<float>(1.0 - std::exp(t * p.log_beta2));
  *step = p.lr / bc1;
  *inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
}

// Fills the table of AdamFactors for t in [0, size): 2 floats per step.
inline void AdamBiasTable(const OptimizerParams& p, uint32_t size, float* table) {
  for (uint32_t t = 0; t < size; ++t) AdamFactors(p, t, table + 2 * t, table + 2 * t + 1);
}

// `Tag` only names the instantiation: a translation unit compiled with other
// code-generation flags (optimizer_scalar.cc) instantiates the kernels with a
// tag of its own in an anonymous namespace, which gives them (and their
// lambdas) internal linkage, so the linker cannot pick that unit's copy for
// the table's pipeline (or the reverse).
//
// The kernels take the row width either at compile time (kDim > 0: the loop
// has a fixed trip count the compiler unrolls into a few vector FMAs, which
// matters at 16 floats per row) or at run time (kDim == 0, dim is used).
template <size_t kDim>
constexpr size_t Width(size_t dim) {
  if constexpr (kDim > 0) {
    return kDim;
  } else {
    return dim;
  }
}

// A fixed-width row copied into a local array, and back with Store: locals
// alias nothing, so the unrolled loop over them becomes a few vector
// operations whatever the compiler knows about the row's pointers. Each
// kernel writes its formula once, as a loop over pointers, and RunOnRow runs
// it on the row itself (run-time width) or on staged copies (fixed width).
template <size_t kN>
struct Staged {
  explicit Staged(const float* src) { std::memcpy(v, src, sizeof(v)); }
  void Store(float* dst) const { std::memcpy(dst, v, sizeof(v)); }
  float v[kN];
};

// Runs body(n, g, w, s) on the row itself (run-time width), or on staged
// copies of g, w and the first kStateRows x kDim floats of the state s.
template <size_t kDim, size_t kStateRows, typename Body>
inline void RunOnRow(size_t dim, const float* g, float* w, float* state, const Body& body) {
  if constexpr (kDim == 0) {
    body(dim, g, w, state);
  } else {
    const Staged<kDim> gl(g);
    Staged<kDim> wl(w);
    if constexpr (kStateRows == 0) {
      body(kDim, gl.v, wl.v, nullptr);
    } else {
      Staged<kStateRows * kDim> sl(state);
      body(kDim, gl.v, wl.v, sl.v);
      sl.Store(state);
    }
    wl.Store(w);
  }
}

// w <- w - lr * g'
template <size_t kDim = 0, typename Tag = void>
inline void SgdStep(const OptimizerParams& p, size_t dim, const float* __restrict g,
                    float* __restrict w, float* /*state*/) {
  const float lr = p.lr, wd = p.weight_decay;
  RunOnRow<kDim, 0>(dim, g, w, nullptr, [lr, wd](size_t n, const float* gr, float* wr, float*) {
    for (size_t c = 0; c < n; ++c) wr[c] -= lr * (gr[c] + wd * wr[c]);
  });
}

// v <- momentum * v + g';  w <- w - lr * v
template <size_t kDim = 0, typename Tag = void>
inline void MomentumStep(const OptimizerParams& p, size_t dim, const float* __restrict g,
                         float* __restrict w, float* __restrict state) {
  const float lr = p.lr, wd = p.weight_decay, mu = p.momentum;
  RunOnRow<kDim, 1>(dim, g, w, state,
                    [lr, wd, mu](size_t n, const float* gr, float* wr, float* vr) {
                      for (size_t c = 0; c < n; ++c) {
                        const float gc = gr[c] + wd * wr[c];
                        vr[c] = mu * vr[c] + gc;
                        wr[c] -= lr * vr[c];
                      }
                    });
}

// a <- a + g'^2;  w <- w - lr * g' / (sqrt(a) + eps)
template <size_t kDim = 0, typename Tag = void>
inline void AdagradStep(const OptimizerParams& p, size_t dim, const float* __restrict g,
                        float* __restrict w, float* __restrict state) {
  const float lr = p.lr, wd = p.weight_decay, eps = p.epsilon;
  RunOnRow<kDim, 1>(dim, g, w, state,
                    [lr, wd, eps](size_t n, const float* gr, float* wr, float* ar) {
                      for (size_t c = 0; c < n; ++c) {
                        const float gc = gr[c] + wd * wr[c];
                        ar[c] += gc * gc;
                        wr[c] -= lr * gc / (std::sqrt(ar[c]) + eps);
                      }
                    });
}

// t <- t + 1;  m <- b1 m + (1 - b1) g';  v <- b2 v + (1 - b2) g'^2
// w <- w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
template <size_t kDim = 0, typename Tag = void>
inline void AdamStep(const OptimizerParams& p, size_t dim, const float* __restrict g,
                     float* __restrict w, float* __restrict state) {
  const size_t n = Width<kDim>(dim);
  uint32_t t;
  std::memcpy(&t, state + 2 * n, sizeof(t));
  if (t != UINT32_MAX) ++t;  // saturates; by then the correction is exactly 1
  std::memcpy(state + 2 * n, &t, sizeof(t));
  float step, inv_sqrt_bc2;
  if (t < p.adam_table_size) {
    step = p.adam_table[2 * t];
    inv_sqrt_bc2 = p.adam_table[2 * t + 1];
  } else {
    AdamFactors(p, t, &step, &inv_sqrt_bc2);
  }
  const float b1 = p.beta1, b2 = p.beta2, eps = p.epsilon, wd = p.weight_decay;
  // The state's first 2n floats: [m(n) | v(n)].
  RunOnRow<kDim, 2>(dim, g, w, state, [=](size_t nn, const float* gr, float* wr, float* mv) {
    float* m = mv;
    float* v = mv + nn;
    for (size_t c = 0; c < nn; ++c) {
      const float gc = gr[c] + wd * wr[c];
      m[c] = b1 * m[c] + (1.0f - b1) * gc;
      v[c] = b2 * v[c] + (1.0f - b2) * gc * gc;
      wr[c] -= step * m[c] / (std::sqrt(v[c]) * inv_sqrt_bc2 + eps);
    }
  });
}

}  // namespace phalanx::ps::internal
