#include <algorithm>

#include "worker/internal/model_math.h"
#include "worker/internal/models.h"

namespace phalanx::worker::internal {
namespace {

// One hidden ReLU layer: z = W2 relu(W1 x + b1) + b2.
class MlpModel final : public DenseModel {
 public:
  MlpModel(size_t input_dim, size_t hidden, size_t num_classes, float l2)
      : DenseModel(input_dim, num_classes), h_(hidden), l2_(l2) {}

  std::string name() const override { return "mlp"; }
  size_t dense_size() const override { return h_ * d_ + h_ + c_ * h_ + c_; }

  float LossAndGradient(const Dataset& data, std::span<const size_t> idx, const float* dense,
                        const SparseRows& /*rows*/, float* dense_grad,
                        float* /*sparse_grad*/) const override {
    Mat x;
    std::vector<int32_t> y;
    if (!GatherBatch(data, idx, &x, &y)) {
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

  const size_t h_;
  const float l2_;
};

}  // namespace

std::unique_ptr<Model> NewMlpModel(size_t input_dim, size_t hidden, size_t num_classes, float l2) {
  return std::make_unique<MlpModel>(input_dim, hidden, num_classes, l2);
}

}  // namespace phalanx::worker::internal
