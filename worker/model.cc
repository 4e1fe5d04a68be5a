#include "worker/model.h"

#include <Eigen/Core>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>

namespace phalanx::worker {
namespace {

using Mat = Eigen::MatrixXf;  // column-major: one example per column
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXf;
using ConstRowMap = Eigen::Map<const RowMat>;
using RowMap = Eigen::Map<RowMat>;
using ConstVecMap = Eigen::Map<const Vec>;
using VecMap = Eigen::Map<Vec>;

// Predict and Accuracy work in chunks of this many examples so that a full
// test set never materialises as one big activation matrix.
constexpr size_t kPredictChunk = 1024;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// The contract for data the model cannot use (see Model::Validate): zero
// gradients, NaN loss.
float InvalidBatch(float* dense_grad, size_t dense_size, float* sparse_grad, size_t sparse_size) {
  if (dense_grad != nullptr) std::fill(dense_grad, dense_grad + dense_size, 0.0f);
  if (sparse_grad != nullptr) std::fill(sparse_grad, sparse_grad + sparse_size, 0.0f);
  return kNaN;
}

// Labels of `idx`, or false when an index or label is out of range.
bool GatherLabels(const Dataset& data, std::span<const size_t> idx, size_t num_classes,
                  std::vector<int32_t>* y) {
  y->resize(idx.size());
  for (size_t b = 0; b < idx.size(); ++b) {
    if (idx[b] >= data.labels.size()) return false;
    const int32_t label = data.labels[idx[b]];
    if (label < 0 || static_cast<size_t>(label) >= num_classes) return false;
    (*y)[b] = label;
  }
  return true;
}

// The examples `idx` as the columns of x (dim x B). False on a shape mismatch.
bool GatherDense(const Dataset& data, std::span<const size_t> idx, size_t dim, Mat* x) {
  if (data.feature_dim != dim || data.features.size() != data.size() * dim) return false;
  x->resize(static_cast<Eigen::Index>(dim), static_cast<Eigen::Index>(idx.size()));
  for (size_t b = 0; b < idx.size(); ++b) {
    if (idx[b] >= data.size()) return false;
    std::memcpy(x->col(static_cast<Eigen::Index>(b)).data(), data.row(idx[b]), dim * sizeof(float));
  }
  return true;
}

// Softmax cross-entropy over the columns of z (classes x B). Replaces z by
// d(loss)/dz * scale, i.e. (softmax(z) - onehot(y)) * scale, and returns the
// summed (not averaged) loss. Subtracting the column max keeps exp() finite.
double SoftmaxCrossEntropy(Mat* z, const std::vector<int32_t>& y, float scale) {
  double loss = 0;
  for (Eigen::Index b = 0; b < z->cols(); ++b) {
    auto col = z->col(b);
    const float m = col.maxCoeff();
    const float zy = col(y[static_cast<size_t>(b)]) - m;
    col.array() = (col.array() - m).exp();
    const float sum = col.sum();
    loss += std::log(static_cast<double>(sum)) - zy;
    col *= scale / sum;
    col(y[static_cast<size_t>(b)]) -= scale;
  }
  return loss;
}

// Binary cross-entropy on logits z (1 x B), labels in {0, 1}. Replaces z by
// (sigmoid(z) - y) * scale and returns the summed loss, computed as
// max(z, 0) - z*y + log1p(exp(-|z|)), which never overflows.
double SigmoidCrossEntropy(Mat* z, const std::vector<int32_t>& y, float scale) {
  double loss = 0;
  for (Eigen::Index b = 0; b < z->cols(); ++b) {
    const float v = (*z)(0, b);
    const float label = static_cast<float>(y[static_cast<size_t>(b)]);
    loss += std::max(v, 0.0f) - v * label + std::log1p(std::exp(-std::abs(v)));
    const float p = v >= 0 ? 1.0f / (1.0f + std::exp(-v)) : std::exp(v) / (1.0f + std::exp(v));
    (*z)(0, b) = (p - label) * scale;
  }
  return loss;
}

void ArgmaxColumns(const Mat& z, std::vector<int32_t>* out) {
  for (Eigen::Index b = 0; b < z.cols(); ++b) {
    Eigen::Index k = 0;
    if (z.rows() == 1) {
      k = z(0, b) > 0 ? 1 : 0;  // single logit: class 1 iff p > 0.5
    } else {
      z.col(b).maxCoeff(&k);
    }
    out->push_back(static_cast<int32_t>(k));
  }
}

Status ValidateDense(const Dataset& data, size_t input_dim, size_t num_classes,
                     const std::string& model) {
  if (!data.dense()) {
    return InvalidArgument(model + " needs dense features but data set '" + data.name +
                           "' is sparse");
  }
  if (data.feature_dim != input_dim) {
    return InvalidArgument(model + " expects input_dim " + std::to_string(input_dim) +
                           " but data set '" + data.name + "' has feature_dim " +
                           std::to_string(data.feature_dim));
  }
  if (data.features.size() != data.size() * data.feature_dim) {
    return InvalidArgument("data set '" + data.name + "' has " +
                           std::to_string(data.features.size()) + " feature values for " +
                           std::to_string(data.size()) + " examples");
  }
  for (size_t i = 0; i < data.size(); ++i) {
    if (data.labels[i] < 0 || static_cast<size_t>(data.labels[i]) >= num_classes) {
      return InvalidArgument("label " + std::to_string(data.labels[i]) + " of example " +
                             std::to_string(i) + " of '" + data.name + "' is not in [0, " +
                             std::to_string(num_classes) + ")");
    }
  }
  return Status::Ok();
}

// Runs `logits(x_chunk) -> z` over idx in chunks and returns the argmax.
template <typename Logits>
std::vector<int32_t> PredictDense(const Dataset& data, std::span<const size_t> idx, size_t dim,
                                  const Logits& logits) {
  std::vector<int32_t> out;
  out.reserve(idx.size());
  Mat x, z;
  for (size_t start = 0; start < idx.size(); start += kPredictChunk) {
    const auto chunk = idx.subspan(start, std::min(kPredictChunk, idx.size() - start));
    if (!GatherDense(data, chunk, dim, &x)) return std::vector<int32_t>(idx.size(), -1);
    logits(x, &z);
    ArgmaxColumns(z, &out);
  }
  return out;
}

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
class SoftmaxModel final : public Model {
 public:
  SoftmaxModel(size_t input_dim, size_t num_classes, float l2)
      : d_(input_dim), c_(num_classes), l2_(l2) {}

  std::string name() const override { return "softmax"; }
  size_t dense_size() const override { return c_ * d_ + c_; }
  size_t embedding_dim() const override { return 0; }
  std::vector<uint64_t> SparseKeys(const Dataset&, std::span<const size_t>) const override {
    return {};
  }
  Status Validate(const Dataset& data) const override {
    return ValidateDense(data, d_, c_, name());
  }

  float LossAndGradient(const Dataset& data, std::span<const size_t> idx, const float* dense,
                        const SparseRows& /*rows*/, float* dense_grad,
                        float* /*sparse_grad*/) const override {
    Mat x;
    std::vector<int32_t> y;
    if (!GatherDense(data, idx, d_, &x) || !GatherLabels(data, idx, c_, &y)) {
      return InvalidBatch(dense_grad, dense_size(), nullptr, 0);
    }
    const auto c = static_cast<Eigen::Index>(c_), d = static_cast<Eigen::Index>(d_);
    ConstRowMap w(dense, c, d);
    ConstVecMap bias(dense + c * d, c);
    RowMap dw(dense_grad, c, d);
    VecMap dbias(dense_grad + c * d, c);
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
  const size_t d_, c_;
  const float l2_;
};

// One hidden ReLU layer: z = W2 relu(W1 x + b1) + b2.
class MlpModel final : public Model {
 public:
  MlpModel(size_t input_dim, size_t hidden, size_t num_classes, float l2)
      : d_(input_dim), h_(hidden), c_(num_classes), l2_(l2) {}

  std::string name() const override { return "mlp"; }
  size_t dense_size() const override { return h_ * d_ + h_ + c_ * h_ + c_; }
  size_t embedding_dim() const override { return 0; }
  std::vector<uint64_t> SparseKeys(const Dataset&, std::span<const size_t>) const override {
    return {};
  }
  Status Validate(const Dataset& data) const override {
    return ValidateDense(data, d_, c_, name());
  }

  float LossAndGradient(const Dataset& data, std::span<const size_t> idx, const float* dense,
                        const SparseRows& /*rows*/, float* dense_grad,
                        float* /*sparse_grad*/) const override {
    Mat x;
    std::vector<int32_t> y;
    if (!GatherDense(data, idx, d_, &x) || !GatherLabels(data, idx, c_, &y)) {
      return InvalidBatch(dense_grad, dense_size(), nullptr, 0);
    }
    if (idx.empty()) {
      std::fill(dense_grad, dense_grad + dense_size(), 0.0f);
      return 0.0f;
    }
    const Params p = Map(dense);
    Grads g = Map(dense_grad);
    const float inv_b = 1.0f / static_cast<float>(idx.size());

    Mat a1 = p.w1 * x;  // pre-activations, h x B
    a1.colwise() += p.b1;
    const Mat h1 = a1.cwiseMax(0.0f);
    Mat z = p.w2 * h1;
    z.colwise() += p.b2;
    double loss = SoftmaxCrossEntropy(&z, y, inv_b) * inv_b;  // z is now dL/dz

    g.w2.noalias() = z * h1.transpose();
    g.b2 = z.rowwise().sum();
    // dL/da1 = (W2^T dL/dz) masked by the ReLU; a1 is reused as its storage.
    Mat dh = p.w2.transpose() * z;
    a1 = (a1.array() > 0.0f).select(dh, 0.0f);
    g.w1.noalias() = a1 * x.transpose();
    g.b1 = a1.rowwise().sum();
    if (l2_ > 0) {
      loss += 0.5 * l2_ * (p.w1.squaredNorm() + p.w2.squaredNorm());
      g.w1 += l2_ * p.w1;
      g.w2 += l2_ * p.w2;
    }
    return static_cast<float>(loss);
  }

  std::vector<int32_t> Predict(const Dataset& data, std::span<const size_t> idx, const float* dense,
                               const SparseRows& /*rows*/) const override {
    const Params p = Map(dense);
    return PredictDense(data, idx, d_, [&](const Mat& x, Mat* z) {
      Mat a1 = p.w1 * x;
      a1.colwise() += p.b1;
      z->noalias() = p.w2 * a1.cwiseMax(0.0f);
      z->colwise() += p.b2;
    });
  }

 private:
  struct Params {
    ConstRowMap w1;
    ConstVecMap b1;
    ConstRowMap w2;
    ConstVecMap b2;
  };
  struct Grads {
    RowMap w1;
    VecMap b1;
    RowMap w2;
    VecMap b2;
  };
  template <typename T, typename P>
  P MapImpl(T* base) const {
    const auto d = static_cast<Eigen::Index>(d_), h = static_cast<Eigen::Index>(h_),
               c = static_cast<Eigen::Index>(c_);
    return P{
        {base, h, d}, {base + h * d, h}, {base + h * d + h, c, h}, {base + h * d + h + c * h, c}};
  }
  Params Map(const float* base) const { return MapImpl<const float, Params>(base); }
  Grads Map(float* base) const { return MapImpl<float, Grads>(base); }

  const size_t d_, h_, c_;
  const float l2_;
};

// Finds a key's row in SparseRows: binary search when the keys are sorted (as
// SparseKeys returns them), a hash map otherwise.
class RowIndex {
 public:
  explicit RowIndex(const std::vector<uint64_t>& keys) : keys_(keys) {
    sorted_ = std::is_sorted(keys.begin(), keys.end());
    if (!sorted_) {
      map_.reserve(keys.size());
      for (size_t i = 0; i < keys.size(); ++i) map_.emplace(keys[i], static_cast<int64_t>(i));
    }
  }
  // Row of `key`, or -1.
  int64_t Find(uint64_t key) const {
    if (sorted_) {
      const auto it = std::lower_bound(keys_.begin(), keys_.end(), key);
      return it != keys_.end() && *it == key ? it - keys_.begin() : -1;
    }
    const auto it = map_.find(key);
    return it == map_.end() ? -1 : it->second;
  }

 private:
  const std::vector<uint64_t>& keys_;
  bool sorted_ = true;
  std::unordered_map<uint64_t, int64_t> map_;
};

// Mean of embedding rows, then a linear layer: z = W mean_j(v_j e[id_j]) + b.
class EmbeddingBagModel final : public Model {
 public:
  EmbeddingBagModel(size_t dim, size_t num_classes, float l2)
      : e_(dim), c_(num_classes), out_(num_classes == 2 ? 1 : num_classes), l2_(l2) {}

  std::string name() const override { return "embedding-bag"; }
  size_t dense_size() const override { return out_ * e_ + out_; }
  size_t embedding_dim() const override { return e_; }

  std::vector<uint64_t> SparseKeys(const Dataset& data,
                                   std::span<const size_t> idx) const override {
    std::vector<uint64_t> keys;
    for (size_t i : idx) {
      if (i < data.ids.size()) keys.insert(keys.end(), data.ids[i].begin(), data.ids[i].end());
    }
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
  }

  Status Validate(const Dataset& data) const override {
    if (data.dense() || data.ids.size() != data.size()) {
      return InvalidArgument("embedding-bag needs sparse ids for every example of '" + data.name +
                             "'");
    }
    if (!data.values.empty() && data.values.size() != data.size()) {
      return InvalidArgument("data set '" + data.name + "' has values for " +
                             std::to_string(data.values.size()) + " of " +
                             std::to_string(data.size()) + " examples");
    }
    for (size_t i = 0; i < data.size(); ++i) {
      if (data.labels[i] < 0 || static_cast<size_t>(data.labels[i]) >= c_) {
        return InvalidArgument("label " + std::to_string(data.labels[i]) + " of example " +
                               std::to_string(i) + " of '" + data.name + "' is not in [0, " +
                               std::to_string(c_) + ")");
      }
      if (!data.values.empty() && !data.values[i].empty() &&
          data.values[i].size() != data.ids[i].size()) {
        return InvalidArgument("example " + std::to_string(i) + " of '" + data.name + "' has " +
                               std::to_string(data.ids[i].size()) + " ids but " +
                               std::to_string(data.values[i].size()) + " values");
      }
    }
    return Status::Ok();
  }

  float LossAndGradient(const Dataset& data, std::span<const size_t> idx, const float* dense,
                        const SparseRows& rows, float* dense_grad,
                        float* sparse_grad) const override {
    const size_t sparse_size = rows.keys.size() * e_;
    Bags bags;
    std::vector<int32_t> y;
    if (rows.values.size() != sparse_size || !BuildBags(data, idx, rows, &bags) ||
        !GatherLabels(data, idx, c_, &y)) {
      return InvalidBatch(dense_grad, dense_size(), sparse_grad, sparse_size);
    }
    std::fill(sparse_grad, sparse_grad + sparse_size, 0.0f);
    const auto e = static_cast<Eigen::Index>(e_), out = static_cast<Eigen::Index>(out_);
    ConstRowMap w(dense, out, e);
    ConstVecMap bias(dense + out * e, out);
    RowMap dw(dense_grad, out, e);
    VecMap dbias(dense_grad + out * e, out);
    if (idx.empty()) {
      dw.setZero();
      dbias.setZero();
      return 0.0f;
    }
    const float inv_b = 1.0f / static_cast<float>(idx.size());
    const Mat h = Pool(bags, rows);
    Mat z = w * h;
    z.colwise() += bias;
    double loss =
        (out_ == 1 ? SigmoidCrossEntropy(&z, y, inv_b) : SoftmaxCrossEntropy(&z, y, inv_b)) *
        inv_b;  // z is now dL/dz
    dw.noalias() = z * h.transpose();
    dbias = z.rowwise().sum();
    // dL/de[r] = sum over the batch's uses of r of weight * dL/dh.
    const Mat dh = w.transpose() * z;
    for (size_t b = 0; b < idx.size(); ++b) {
      const auto col = dh.col(static_cast<Eigen::Index>(b));
      for (size_t k = bags.offsets[b]; k < bags.offsets[b + 1]; ++k) {
        if (bags.row[k] < 0) continue;
        VecMap(sparse_grad + bags.row[k] * e, e) += bags.weight[k] * col;
      }
    }
    if (l2_ > 0) {
      loss += 0.5 * l2_ * w.squaredNorm();
      dw += l2_ * w;
      std::vector<char> used(rows.keys.size(), 0);
      for (int64_t r : bags.row) {
        if (r >= 0) used[static_cast<size_t>(r)] = 1;
      }
      for (size_t r = 0; r < used.size(); ++r) {
        if (!used[r]) continue;
        ConstVecMap row(rows.values.data() + r * e_, e);
        loss += 0.5 * l2_ * row.squaredNorm();
        VecMap(sparse_grad + r * e_, e) += l2_ * row;
      }
    }
    return static_cast<float>(loss);
  }

  std::vector<int32_t> Predict(const Dataset& data, std::span<const size_t> idx, const float* dense,
                               const SparseRows& rows) const override {
    const auto e = static_cast<Eigen::Index>(e_), out = static_cast<Eigen::Index>(out_);
    ConstRowMap w(dense, out, e);
    ConstVecMap bias(dense + out * e, out);
    std::vector<int32_t> result;
    result.reserve(idx.size());
    if (rows.values.size() != rows.keys.size() * e_) return std::vector<int32_t>(idx.size(), -1);
    for (size_t start = 0; start < idx.size(); start += kPredictChunk) {
      const auto chunk = idx.subspan(start, std::min(kPredictChunk, idx.size() - start));
      Bags bags;
      if (!BuildBags(data, chunk, rows, &bags)) return std::vector<int32_t>(idx.size(), -1);
      Mat z = w * Pool(bags, rows);
      z.colwise() += bias;
      ArgmaxColumns(z, &result);
    }
    return result;
  }

 private:
  // The batch's ids resolved to rows of SparseRows, flattened: example b owns
  // entries [offsets[b], offsets[b+1]); weight = v / n folds in the mean.
  struct Bags {
    std::vector<size_t> offsets;
    std::vector<int64_t> row;  // -1: key not in rows, counts as a zero row
    std::vector<float> weight;
  };

  bool BuildBags(const Dataset& data, std::span<const size_t> idx, const SparseRows& rows,
                 Bags* bags) const {
    if (data.ids.size() != data.size()) return false;
    const bool has_values = !data.values.empty();
    if (has_values && data.values.size() != data.size()) return false;
    const RowIndex index(rows.keys);
    bags->offsets.assign(1, 0);
    for (size_t i : idx) {
      if (i >= data.size()) return false;
      const auto& ids = data.ids[i];
      const std::vector<float>* values = has_values ? &data.values[i] : nullptr;
      if (values != nullptr && values->empty()) values = nullptr;
      if (values != nullptr && values->size() != ids.size()) return false;
      const float inv_n = ids.empty() ? 0.0f : 1.0f / static_cast<float>(ids.size());
      for (size_t j = 0; j < ids.size(); ++j) {
        bags->row.push_back(index.Find(ids[j]));
        bags->weight.push_back(values != nullptr ? (*values)[j] * inv_n : inv_n);
      }
      bags->offsets.push_back(bags->row.size());
    }
    return true;
  }

  // h (e x B): the weighted mean embedding of each example.
  Mat Pool(const Bags& bags, const SparseRows& rows) const {
    const auto e = static_cast<Eigen::Index>(e_);
    const size_t batch = bags.offsets.size() - 1;
    Mat h = Mat::Zero(e, static_cast<Eigen::Index>(batch));
    for (size_t b = 0; b < batch; ++b) {
      auto col = h.col(static_cast<Eigen::Index>(b));
      for (size_t k = bags.offsets[b]; k < bags.offsets[b + 1]; ++k) {
        if (bags.row[k] < 0) continue;
        col += bags.weight[k] * ConstVecMap(rows.values.data() + bags.row[k] * e, e);
      }
    }
    return h;
  }

  const size_t e_, c_, out_;
  const float l2_;
};

}  // namespace

Result<std::unique_ptr<Model>> CreateModel(const ModelOptions& options) {
  // Guards against shapes whose parameter count overflows or cannot be a real
  // model (the PS stores dense parameters as rows of one table).
  constexpr size_t kMaxDense = size_t{1} << 31;
  if (!(options.l2 >= 0.0f) || !std::isfinite(options.l2)) {
    return InvalidArgument("model l2 must be a finite number >= 0, got " +
                           std::to_string(options.l2));
  }
  if (options.num_classes < 2 || options.num_classes > 100000) {
    return InvalidArgument("model num_classes must be in [2, 100000], got " +
                           std::to_string(options.num_classes));
  }
  if (options.kind == "softmax" || options.kind == "mlp") {
    if (options.input_dim == 0 || options.input_dim > kMaxDense) {
      return InvalidArgument("model input_dim must be positive, got " +
                             std::to_string(options.input_dim));
    }
    if (options.kind == "softmax") {
      if (options.input_dim * options.num_classes > kMaxDense) {
        return InvalidArgument("softmax model too large");
      }
      return std::unique_ptr<Model>(
          new SoftmaxModel(options.input_dim, options.num_classes, options.l2));
    }
    if (options.hidden == 0 || options.hidden > kMaxDense / options.input_dim) {
      return InvalidArgument(
          "mlp hidden must be positive and the model below 2^31 parameters, "
          "got hidden " +
          std::to_string(options.hidden));
    }
    return std::unique_ptr<Model>(
        new MlpModel(options.input_dim, options.hidden, options.num_classes, options.l2));
  }
  if (options.kind == "embedding-bag") {
    if (options.embedding_dim == 0 || options.embedding_dim > 65536) {
      return InvalidArgument("embedding-bag embedding_dim must be in [1, 65536], got " +
                             std::to_string(options.embedding_dim));
    }
    return std::unique_ptr<Model>(
        new EmbeddingBagModel(options.embedding_dim, options.num_classes, options.l2));
  }
  return InvalidArgument("unknown model kind '" + options.kind +
                         "' (expected softmax, mlp or embedding-bag)");
}

double Accuracy(const Model& model, const Dataset& data, std::span<const size_t> idx,
                const float* dense, const SparseRows& rows) {
  if (idx.empty()) return 0.0;
  size_t correct = 0;
  for (size_t start = 0; start < idx.size(); start += kPredictChunk) {
    const auto chunk = idx.subspan(start, std::min(kPredictChunk, idx.size() - start));
    const std::vector<int32_t> pred = model.Predict(data, chunk, dense, rows);
    for (size_t b = 0; b < chunk.size(); ++b) {
      if (pred[b] == data.labels[chunk[b]]) ++correct;
    }
  }
  return static_cast<double>(correct) / static_cast<double>(idx.size());
}

double Accuracy(const Model& model, const Dataset& data, const float* dense,
                const SparseRows& rows) {
  std::vector<size_t> all(data.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  return Accuracy(model, data, all, dense, rows);
}

}  // namespace phalanx::worker
