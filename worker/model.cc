#include "worker/model.h"

#include <algorithm>
#include <cmath>

#include "worker/internal/model_math.h"
#include "worker/internal/models.h"

namespace phalanx::worker {

using internal::kPredictChunk;

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
      return internal::NewSoftmaxModel(options.input_dim, options.num_classes, options.l2);
    }
    if (options.hidden == 0 || options.hidden > kMaxDense / options.input_dim) {
      return InvalidArgument(
          "mlp hidden must be positive and the model below 2^31 parameters, "
          "got hidden " +
          std::to_string(options.hidden));
    }
    return internal::NewMlpModel(options.input_dim, options.hidden, options.num_classes,
                                 options.l2);
  }
  if (options.kind == "embedding-bag") {
    if (options.embedding_dim == 0 || options.embedding_dim > 65536) {
      return InvalidArgument("embedding-bag embedding_dim must be in [1, 65536], got " +
                             std::to_string(options.embedding_dim));
    }
    return internal::NewEmbeddingBagModel(options.embedding_dim, options.num_classes, options.l2);
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
