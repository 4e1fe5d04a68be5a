#pragma once
// Models with hand-written gradients on Eigen. A model has a dense parameter
// vector (stored on the PS as fixed-size rows of a dense table) and, for sparse
// models, embedding rows of `embedding_dim` floats keyed by feature id.
// Models are stateless apart from their shape: methods are const and may be
// called from several threads at once.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/dataset.h"

namespace phalanx::worker {

// Embedding rows fetched for a batch: keys (distinct) and their rows,
// keys.size() x dim, row-major.
struct SparseRows {
  std::vector<uint64_t> keys;
  std::vector<float> values;
};

struct ModelOptions {
  std::string kind = "softmax";  // softmax | mlp | embedding-bag
  size_t input_dim = 784;        // dense models
  size_t num_classes = 10;
  size_t hidden = 128;        // mlp
  size_t embedding_dim = 16;  // embedding-bag
  float l2 = 0.0f;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual std::string name() const = 0;
  virtual size_t dense_size() const = 0;     // number of dense parameters
  virtual size_t embedding_dim() const = 0;  // 0 for dense-only models

  // Distinct embedding keys used by the examples `idx` (sorted). Empty for dense models.
  virtual std::vector<uint64_t> SparseKeys(const Dataset& data,
                                           std::span<const size_t> idx) const = 0;

  // Mean loss over the batch `idx`. Writes dense_grad (dense_size floats) and,
  // for sparse models, sparse_grad (rows.keys.size() x dim, aligned with
  // rows.keys; zero for keys the batch does not use).
  virtual float LossAndGradient(const Dataset& data, std::span<const size_t> idx,
                                const float* dense, const SparseRows& rows, float* dense_grad,
                                float* sparse_grad) const = 0;

  // LossAndGradient for dense-only models (no embedding rows), through a
  // kernel tuned for small batches: examples are read in place (no gather),
  // and nothing is allocated once the calling thread has warmed up. It is a
  // pure function of its inputs (so deterministic on any thread), but its
  // summation order differs from LossAndGradient's, so the two agree to float
  // rounding (relative ~1e-6), not bitwise. The federated simulator's clients
  // use it; the cluster's workers keep LossAndGradient. Same contract for bad
  // data (NaN loss, zero gradient). Default: LossAndGradient.
  virtual float DenseLossAndGradientFast(const Dataset& data, std::span<const size_t> idx,
                                         const float* dense, float* dense_grad) const {
    return LossAndGradient(data, idx, dense, SparseRows{}, dense_grad, nullptr);
  }

  // Predicted class per example of `idx`.
  virtual std::vector<int32_t> Predict(const Dataset& data, std::span<const size_t> idx,
                                       const float* dense, const SparseRows& rows) const = 0;

  // InvalidArgument when `data` cannot feed this model (dense vs sparse,
  // feature_dim, label range, ragged values). Call once after loading:
  // LossAndGradient/Predict do not return a Status, and on such data they
  // return a NaN loss with zero gradients (a NaN the PS rejects) or class -1
  // instead of crashing.
  virtual Status Validate(const Dataset& /*data*/) const { return Status::Ok(); }
};

// InvalidArgument for an unknown kind or impossible shape.
//
// Parameter layouts (all row-major, packed in this order in the dense vector):
//  softmax:       W [num_classes x input_dim], b [num_classes]
//  mlp:           W1 [hidden x input_dim], b1 [hidden], W2 [num_classes x hidden], b2 [num_classes]
//  embedding-bag: w [out x embedding_dim], b [out], where out = 1 when
//                 num_classes == 2 (one logit, sigmoid + binary cross-entropy;
//                 class 1 iff logit > 0) and out = num_classes otherwise
//                 (softmax + cross-entropy).
// The embedding-bag input is the weighted mean (1/n) * sum_j v_j * e[id_j] of
// an example's n ids (v_j = 1 without values); ids missing from `rows` count as
// zero rows. L2 (0.5 * l2 * ||.||^2 added to the loss) covers weight matrices
// and the embedding rows a batch touches, not biases.
Result<std::unique_ptr<Model>> CreateModel(const ModelOptions& options);

// Fraction of `idx` that `model` classifies correctly, predicting in chunks of
// 1024 to bound memory. For sparse models `rows` must hold the keys of all of
// `idx` (SparseKeys). 0 for an empty idx.
double Accuracy(const Model& model, const Dataset& data, std::span<const size_t> idx,
                const float* dense, const SparseRows& rows);
// Same over all of `data`.
double Accuracy(const Model& model, const Dataset& data, const float* dense,
                const SparseRows& rows);

}  // namespace phalanx::worker
