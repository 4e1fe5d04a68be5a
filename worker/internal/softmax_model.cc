#include "worker/internal/models.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "worker/internal/model_math.h"

namespace phalanx::worker::internal {
namespace {

// The small-batch dense kernel behind DenseLossAndGradientFast. GCC/Clang
// vector extensions of 16 floats: one AVX-512 register with -march=native,
// split into narrower registers elsewhere. Every sum has a fixed order (lanes
// by k mod 16, then a fixed tree, then the k tail; outer products in example
// order), so results never depend on the calling thread.
namespace fast {

typedef float V16 __attribute__((vector_size(64)));

// Flushes subnormal floats to zero (x86 MXCSR FTZ and DAZ) while in scope, on
// this thread only, restoring the caller's mode after. A confident softmax
// puts probabilities below 1e-38 in nearly every batch, and every arithmetic
// operation touching a subnormal takes a ~100-cycle microcode assist: without
// this the kernel runs 2-3x slower on a trained model than on a fresh one.
// Values that small change nothing a float model can represent downstream.
class SubnormalsAsZero {
 public:
#if defined(__SSE__)
  SubnormalsAsZero() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtzDaz); }
  ~SubnormalsAsZero() { _mm_setcsr(saved_); }

 private:
  static constexpr unsigned kFtzDaz = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)
  unsigned saved_;
#endif
};
constexpr size_t kLanes = 16;

inline V16 Load(const float* p) {
  V16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void Store(float* p, V16 v) { std::memcpy(p, &v, sizeof(v)); }

inline float HorizontalSum(V16 v) {
  float t[kLanes];
  std::memcpy(t, &v, sizeof(t));
  for (size_t w = kLanes / 2; w > 0; w /= 2) {
    for (size_t i = 0; i < w; ++i) t[i] += t[i + w];
  }
  return t[0];
}

// out[b * ldo + c] = dot(x[b], w[c * d ..]) for NB examples x NC classes.
// `next` (or nullptr) holds NB rows the caller reads next: they are
// prefetched alongside, since examples are scattered over a data set far
// larger than the caches.
template <int NB, int NC>
void DotBlock(const float* const* x, const float* w, size_t d, float* out, size_t ldo,
              const float* const* next) {
  V16 acc[NB][NC];
  for (int b = 0; b < NB; ++b) {
    for (int c = 0; c < NC; ++c) acc[b][c] = V16{};
  }
  size_t k = 0;
  for (; k + kLanes <= d; k += kLanes) {
    V16 xv[NB];
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) xv[b] = Load(x[b] + k);
    if (next != nullptr) {
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) __builtin_prefetch(next[b] + k);
    }
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) {
      const V16 wv = Load(w + static_cast<size_t>(c) * d + k);
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) acc[b][c] += xv[b] * wv;
    }
  }
  for (int b = 0; b < NB; ++b) {
    for (int c = 0; c < NC; ++c) {
      float s = HorizontalSum(acc[b][c]);
      const float* wc = w + static_cast<size_t>(c) * d;
      for (size_t j = k; j < d; ++j) s += x[b][j] * wc[j];
      out[static_cast<size_t>(b) * ldo + static_cast<size_t>(c)] = s;
    }
  }
}

// z (B x C, row-major) = X W^T: x[b] are the B example rows, w is C x d.
void Logits(const float* const* x, size_t batch, const float* w, size_t classes, size_t d,
            float* z) {
  constexpr size_t kB = 4, kC = 5;
  for (size_t b = 0; b < batch; b += kB) {
    const bool full_b = b + kB <= batch;
    for (size_t c = 0; c < classes; c += kC) {
      const bool full_c = c + kC <= classes;
      if (full_b && full_c) {
        // Rows are prefetched during their group's first class block.
        const bool prefetch = c == 0 && b + 2 * kB <= batch;
        DotBlock<kB, kC>(x + b, w + c * d, d, z + b * classes + c, classes,
                         prefetch ? x + b + kB : nullptr);
        continue;
      }
      for (size_t bb = b; bb < std::min(batch, b + kB); ++bb) {
        for (size_t cc = c; cc < std::min(classes, c + kC); ++cc) {
          DotBlock<1, 1>(x + bb, w + cc * d, d, z + bb * classes + cc, classes, nullptr);
        }
      }
    }
  }
}

// dw[c][k0 .. k0 + 16 KV) = sum over b (in order) of g[b][c] x[b][k], for the
// NC classes starting at dw (rows of length d).
template <int NC, int KV>
void OuterBlock(const float* const* x, const float* g, size_t classes, size_t batch, size_t k0,
                float* dw, size_t d) {
  V16 acc[NC][KV];
  for (int c = 0; c < NC; ++c) {
    for (int v = 0; v < KV; ++v) acc[c][v] = V16{};
  }
  for (size_t b = 0; b < batch; ++b) {
    V16 xv[KV];
#pragma GCC unroll 8
    for (int v = 0; v < KV; ++v) xv[v] = Load(x[b] + k0 + kLanes * static_cast<size_t>(v));
    const float* gb = g + b * classes;
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) {
      const float gc = gb[c];
#pragma GCC unroll 8
      for (int v = 0; v < KV; ++v) acc[c][v] += gc * xv[v];
    }
  }
  for (int c = 0; c < NC; ++c) {
    for (int v = 0; v < KV; ++v) {
      Store(dw + static_cast<size_t>(c) * d + k0 + kLanes * static_cast<size_t>(v), acc[c][v]);
    }
  }
}

// dw (C x d, row-major) = G^T X, G being B x C row-major.
void OuterProduct(const float* const* x, size_t batch, const float* g, size_t classes, size_t d,
                  float* dw) {
  constexpr size_t kC = 5, kV = 4;
  for (size_t c = 0; c < classes; c += kC) {
    const size_t nc = std::min(kC, classes - c);
    const float* gc = g + c;
    float* dwc = dw + c * d;
    size_t k = 0;
    if (nc == kC) {
      for (; k + kV * kLanes <= d; k += kV * kLanes) {
        OuterBlock<kC, kV>(x, gc, classes, batch, k, dwc, d);
      }
      for (; k + kLanes <= d; k += kLanes) OuterBlock<kC, 1>(x, gc, classes, batch, k, dwc, d);
    } else {
      for (size_t i = 0; i < nc; ++i) {
        size_t kk = 0;
        for (; kk + kLanes <= d; kk += kLanes) {
          OuterBlock<1, 1>(x, gc + i, classes, batch, kk, dwc + i * d, d);
        }
        k = kk;
      }
    }
    for (size_t i = 0; i < nc; ++i) {
      for (size_t j = k; j < d; ++j) {
        float s = 0.0f;
        for (size_t b = 0; b < batch; ++b) s += g[b * classes + c + i] * x[b][j];
        dwc[i * d + j] = s;
      }
    }
  }
}

}  // namespace fast

// Multinomial logistic regression: z = W x + b.
class SoftmaxModel final : public DenseModel {
 public:
  SoftmaxModel(size_t input_dim, size_t num_classes, float l2)
      : DenseModel(input_dim, num_classes), l2_(l2) {}

  std::string name() const override { return "softmax"; }
  size_t dense_size() const override { return c_ * d_ + c_; }

  float LossAndGradient(const Dataset& data, std::span<const size_t> idx, const float* dense,
                        const SparseRows& /*rows*/, float* dense_grad,
                        float* /*sparse_grad*/) const override {
    Mat x;
    std::vector<int32_t> y;
    if (!GatherBatch(data, idx, &x, &y)) {
      return InvalidBatch(dense_grad, dense_size(), nullptr, 0);
    }
    auto [w, bias, dw, dbias] = LinearMaps(dense, dense_grad, c_, d_);
    if (idx.empty()) {
      dw.setZero();
      dbias.setZero();
      return 0.0f;
    }
    const float inv_b = 1.0f / static_cast<float>(idx.size());
    Mat z = w * x;
    z.colwise() += bias;
    double loss = SoftmaxCrossEntropy(&z, y, inv_b) * inv_b;  // z is now dL/dz
    dw.noalias() = z * x.transpose();
    dbias = z.rowwise().sum();
    if (l2_ > 0) {
      loss += 0.5 * l2_ * w.squaredNorm();
      dw += l2_ * w;
    }
    return static_cast<float>(loss);
  }

  float DenseLossAndGradientFast(const Dataset& data, std::span<const size_t> idx,
                                 const float* dense, float* dense_grad) const override {
    const fast::SubnormalsAsZero ftz;
    // Per-thread scratch: row pointers, labels and the B x C logits.
    thread_local std::vector<const float*> x;
    thread_local std::vector<int32_t> y;
    thread_local std::vector<float> z;
    const size_t batch = idx.size();
    if (data.feature_dim != d_ || data.features.size() != data.size() * d_ ||
        !GatherLabels(data, idx, c_, &y)) {
      return InvalidBatch(dense_grad, dense_size(), nullptr, 0);
    }
    x.resize(batch);
    for (size_t b = 0; b < batch; ++b) x[b] = data.row(idx[b]);  // GatherLabels checked idx
    float* dw = dense_grad;
    float* dbias = dense_grad + c_ * d_;
    const float* bias = dense + c_ * d_;
    if (batch == 0) {
      std::fill(dense_grad, dense_grad + dense_size(), 0.0f);
      return 0.0f;
    }
    z.resize(batch * c_);
    fast::Logits(x.data(), batch, dense, c_, d_, z.data());
    // Softmax cross-entropy per example, as SoftmaxCrossEntropy: z becomes dL/dz.
    const float inv_b = 1.0f / static_cast<float>(batch);
    double loss = 0;
    for (size_t b = 0; b < batch; ++b) {
      float* row = z.data() + b * c_;
      float m = -std::numeric_limits<float>::infinity();
      for (size_t k = 0; k < c_; ++k) {
        row[k] += bias[k];
        m = std::max(m, row[k]);
      }
      const auto label = static_cast<size_t>(y[b]);
      const float zy = row[label] - m;
      float sum = 0.0f;
      for (size_t k = 0; k < c_; ++k) {
        row[k] = std::exp(row[k] - m);
        sum += row[k];
      }
      loss += std::log(static_cast<double>(sum)) - zy;
      const float scale = inv_b / sum;
      for (size_t k = 0; k < c_; ++k) row[k] *= scale;
      row[label] -= inv_b;
    }
    loss *= inv_b;
    fast::OuterProduct(x.data(), batch, z.data(), c_, d_, dw);
    for (size_t k = 0; k < c_; ++k) {
      float s = 0.0f;
      for (size_t b = 0; b < batch; ++b) s += z[b * c_ + k];
      dbias[k] = s;
    }
    if (l2_ > 0) {
      double sq = 0;
      for (size_t j = 0; j < c_ * d_; ++j) {
        sq += static_cast<double>(dense[j]) * dense[j];
        dw[j] += l2_ * dense[j];
      }
      loss += 0.5 * l2_ * sq;
    }
    return static_cast<float>(loss);
  }

  std::vector<int32_t> Predict(const Dataset& data, std::span<const size_t> idx, const float* dense,
                               const SparseRows& /*rows*/) const override {
    const auto c = static_cast<Eigen::Index>(c_), d = static_cast<Eigen::Index>(d_);
    ConstRowMap w(dense, c, d);
    ConstVecMap bias(dense + c * d, c);
    return PredictDense(data, idx, d_, [&](const Mat& x, Mat* z) {
      z->noalias() = w * x;
      z->colwise() += bias;
    });
  }

 private:
  const float l2_;
};

}  // namespace

std::unique_ptr<Model> NewSoftmaxModel(size_t input_dim, size_t num_classes, float l2) {
  return std::make_unique<SoftmaxModel>(input_dim, num_classes, l2);
}

}  // namespace phalanx::worker::internal
