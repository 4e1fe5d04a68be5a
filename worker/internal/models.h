#pragma once
// The three models behind CreateModel (worker/model.h), one file each. The
// factories take shapes CreateModel already checked.

#include <cstddef>
#include <memory>

#include "worker/model.h"

namespace phalanx::worker::internal {

// Multinomial logistic regression (softmax_model.cc), with the small-batch
// kernel behind DenseLossAndGradientFast.
std::unique_ptr<Model> NewSoftmaxModel(size_t input_dim, size_t num_classes, float l2);
// One hidden ReLU layer (mlp_model.cc).
std::unique_ptr<Model> NewMlpModel(size_t input_dim, size_t hidden, size_t num_classes, float l2);
// Mean of embedding rows, then a linear layer (embedding_bag_model.cc).
std::unique_ptr<Model> NewEmbeddingBagModel(size_t dim, size_t num_classes, float l2);

}  // namespace phalanx::worker::internal
