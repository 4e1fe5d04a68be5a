#include "worker/internal/model_math.h"

#include <cmath>
#include <cstring>

namespace phalanx::worker::internal {

float InvalidBatch(float* dense_grad, size_t dense_size, float* sparse_grad, size_t sparse_size) {
  if (dense_grad != nullptr) std::fill(dense_grad, dense_grad + dense_size, 0.0f);
  if (sparse_grad != nullptr) std::fill(sparse_grad, sparse_grad + sparse_size, 0.0f);
  return kNaN;
}

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

bool GatherDense(const Dataset& data, std::span<const size_t> idx, size_t dim, Mat* x) {
  if (data.feature_dim != dim || data.features.size() != data.size() * dim) return false;
  x->resize(static_cast<Eigen::Index>(dim), static_cast<Eigen::Index>(idx.size()));
  for (size_t b = 0; b < idx.size(); ++b) {
    if (idx[b] >= data.size()) return false;
    std::memcpy(x->col(static_cast<Eigen::Index>(b)).data(), data.row(idx[b]), dim * sizeof(float));
  }
  return true;
}

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
  for (size_t i = 0; i < data.size(); ++i) PHX_RETURN_IF_ERROR(CheckLabel(data, i, num_classes));
  return Status::Ok();
}

Status CheckLabel(const Dataset& data, size_t i, size_t num_classes) {
  if (data.labels[i] < 0 || static_cast<size_t>(data.labels[i]) >= num_classes) {
    return InvalidArgument("label " + std::to_string(data.labels[i]) + " of example " +
                           std::to_string(i) + " of '" + data.name + "' is not in [0, " +
                           std::to_string(num_classes) + ")");
  }
  return Status::Ok();
}

LinearMaps::LinearMaps(const float* params, float* grad, size_t out, size_t in)
    : w(params, static_cast<Eigen::Index>(out), static_cast<Eigen::Index>(in)),
      bias(params + out * in, static_cast<Eigen::Index>(out)),
      dw(grad, static_cast<Eigen::Index>(out), static_cast<Eigen::Index>(in)),
      dbias(grad + out * in, static_cast<Eigen::Index>(out)) {}

}  // namespace phalanx::worker::internal
