#pragma once
// Shared math of the worker's models (worker/model.h): Eigen aliases, batch
// gathering, losses with their gradients, prediction in chunks, and the
// checks every dense model makes. Pure functions, safe on any thread.

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/dataset.h"
#include "worker/model.h"

namespace phalanx::worker::internal {

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
float InvalidBatch(float* dense_grad, size_t dense_size, float* sparse_grad, size_t sparse_size);

// Labels of `idx`, or false when an index or label is out of range.
bool GatherLabels(const Dataset& data, std::span<const size_t> idx, size_t num_classes,
                  std::vector<int32_t>* y);

// The examples `idx` as the columns of x (dim x B). False on a shape mismatch.
bool GatherDense(const Dataset& data, std::span<const size_t> idx, size_t dim, Mat* x);

// Softmax cross-entropy over the columns of z (classes x B). Replaces z by
// d(loss)/dz * scale, i.e. (softmax(z) - onehot(y)) * scale, and returns the
// summed (not averaged) loss. Subtracting the column max keeps exp() finite.
double SoftmaxCrossEntropy(Mat* z, const std::vector<int32_t>& y, float scale);

// Binary cross-entropy on logits z (1 x B), labels in {0, 1}. Replaces z by
// (sigmoid(z) - y) * scale and returns the summed loss, computed as
// max(z, 0) - z*y + log1p(exp(-|z|)), which never overflows.
double SigmoidCrossEntropy(Mat* z, const std::vector<int32_t>& y, float scale);

// Appends the class of each column of z to out (one logit: class 1 iff z > 0).
void ArgmaxColumns(const Mat& z, std::vector<int32_t>* out);

// InvalidArgument when example i's label is not in [0, num_classes).
Status CheckLabel(const Dataset& data, size_t i, size_t num_classes);

// Model::Validate for a dense model of `input_dim` features and `num_classes`
// classes; `model` names it in the message.
Status ValidateDense(const Dataset& data, size_t input_dim, size_t num_classes,
                     const std::string& model);

// A linear layer W [out x in], b [out] packed in this order at `params`,
// and its gradient packed the same way at `grad`.
struct LinearMaps {
  LinearMaps(const float* params, float* grad, size_t out, size_t in);
  ConstRowMap w;
  ConstVecMap bias;
  RowMap dw;
  VecMap dbias;
};

// Base of the dense-only models (no embedding rows) of input_dim features
// and num_classes classes.
class DenseModel : public Model {
 public:
  DenseModel(size_t input_dim, size_t num_classes) : d_(input_dim), c_(num_classes) {}
  size_t embedding_dim() const override { return 0; }
  std::vector<uint64_t> SparseKeys(const Dataset&, std::span<const size_t>) const override {
    return {};
  }
  Status Validate(const Dataset& data) const override {
    return ValidateDense(data, d_, c_, name());
  }

 protected:
  // GatherDense and GatherLabels of the batch `idx`; false when either fails.
  bool GatherBatch(const Dataset& data, std::span<const size_t> idx, Mat* x,
                   std::vector<int32_t>* y) const {
    return GatherDense(data, idx, d_, x) && GatherLabels(data, idx, c_, y);
  }

  const size_t d_, c_;
};

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

}  // namespace phalanx::worker::internal
