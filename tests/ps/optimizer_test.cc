// Optimizer numerics: each optimizer, applied through the table over several
// steps, against a scalar double-precision reference written from the
// formulas in ps/internal/optimizer.h.

#include "ps/internal/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "ps/table.h"

namespace phalanx::ps {
namespace {

constexpr int kSteps = 6;
constexpr uint32_t kDim = 5;

// Gradient of column c at step t for key k: varied signs and magnitudes.
float Grad(uint64_t key, int t, uint32_t c) {
  return static_cast<float>(std::sin(0.7 * t + 1.3 * c + 0.1 * static_cast<double>(key)) *
                            (1.0 + c));
}

struct Reference {
  double w, s1 = 0, s2 = 0;  // weight and two state slots
  int t = 0;
};

// One step of the scalar reference for `o`.
void ReferenceStep(const OptimizerOptions& o, double g, Reference& r) {
  g += o.weight_decay * r.w;
  switch (o.kind) {
    case OptimizerKind::kSgd:
      if (o.momentum != 0) {
        r.s1 = o.momentum * r.s1 + g;
        r.w -= o.learning_rate * r.s1;
      } else {
        r.w -= o.learning_rate * g;
      }
      break;
    case OptimizerKind::kAdagrad:
      r.s1 += g * g;
      r.w -= o.learning_rate * g / (std::sqrt(r.s1) + o.epsilon);
      break;
    case OptimizerKind::kAdam: {
      ++r.t;
      r.s1 = o.beta1 * r.s1 + (1 - o.beta1) * g;
      r.s2 = o.beta2 * r.s2 + (1 - o.beta2) * g * g;
      const double m_hat = r.s1 / (1 - std::pow(double{o.beta1}, r.t));
      const double v_hat = r.s2 / (1 - std::pow(double{o.beta2}, r.t));
      r.w -= o.learning_rate * m_hat / (std::sqrt(v_hat) + o.epsilon);
      break;
    }
  }
}

// Applies kSteps steps to key 1 and kSteps / 2 to key 2 (so per-row Adam
// step counts differ), checking every weight after every step.
void CheckAgainstReference(const OptimizerOptions& o, uint32_t dim = kDim) {
  TableOptions options;
  options.dim = dim;
  options.optimizer = o;
  options.init_scale = 0.5f;
  auto created = EmbeddingTable::Create(options);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto& table = *created.value();

  const std::vector<uint64_t> keys = {1, 2};
  std::vector<Reference> ref;
  std::vector<float> init(dim);
  for (uint64_t key : keys) {
    table.InitialRow(key, init.data());
    for (uint32_t c = 0; c < dim; ++c) {
      Reference r{init[c]};
      if (o.kind == OptimizerKind::kAdagrad) r.s1 = o.initial_accumulator;
      ref.push_back(r);
    }
  }
  std::vector<float> grads(keys.size() * dim), out(keys.size() * dim);
  for (int t = 0; t < kSteps; ++t) {
    const size_t n = (t % 2 == 0) ? 2 : 1;  // key 2 only every other step
    for (size_t i = 0; i < n; ++i) {
      for (uint32_t c = 0; c < dim; ++c) {
        grads[i * dim + c] = Grad(keys[i], t, c);
        ReferenceStep(o, grads[i * dim + c], ref[i * dim + c]);
      }
    }
    table.Apply({keys.data(), n}, grads.data());
    table.Lookup(keys, out.data());
    for (size_t j = 0; j < out.size(); ++j) {
      ASSERT_NEAR(out[j], ref[j].w, 2e-5 * (1 + std::abs(ref[j].w)))
          << "step " << t << " key " << keys[j / dim] << " column " << j % dim;
    }
  }
}

TEST(OptimizerTest, Sgd) {
  OptimizerOptions o;
  o.learning_rate = 0.05f;
  CheckAgainstReference(o);
}

TEST(OptimizerTest, SgdWithWeightDecay) {
  OptimizerOptions o;
  o.learning_rate = 0.05f;
  o.weight_decay = 0.1f;
  CheckAgainstReference(o);
}

TEST(OptimizerTest, SgdMomentum) {
  OptimizerOptions o;
  o.learning_rate = 0.05f;
  o.momentum = 0.9f;
  o.weight_decay = 0.01f;
  CheckAgainstReference(o);
}

TEST(OptimizerTest, Adagrad) {
  OptimizerOptions o;
  o.kind = OptimizerKind::kAdagrad;
  o.learning_rate = 0.1f;
  o.initial_accumulator = 0.1f;
  o.epsilon = 1e-6f;
  CheckAgainstReference(o);
}

TEST(OptimizerTest, AdamWithPerRowSteps) {
  OptimizerOptions o;
  o.kind = OptimizerKind::kAdam;
  o.learning_rate = 0.01f;
  o.weight_decay = 0.001f;
  CheckAgainstReference(o);
}

TEST(OptimizerTest, AdamFirstStepMovesByLearningRate) {
  // Bias correction makes Adam's first step lr * sign(g) (up to epsilon),
  // whatever the gradient's scale: a quick check of the step count's start.
  TableOptions options;
  options.dim = 3;
  options.init = InitKind::kZeros;
  options.optimizer.kind = OptimizerKind::kAdam;
  options.optimizer.learning_rate = 0.01f;
  auto table = std::move(EmbeddingTable::Create(options)).value();
  const std::vector<uint64_t> keys = {9};
  const std::vector<float> grads = {1000.0f, -0.001f, 3.0f};
  table->Apply(keys, grads.data());
  std::vector<float> out(3);
  table->Lookup(keys, out.data());
  EXPECT_NEAR(out[0], -0.01f, 1e-6);
  EXPECT_NEAR(out[1], 0.01f, 1e-4);
  EXPECT_NEAR(out[2], -0.01f, 1e-6);
}

// The table of Adam's bias corrections is a cache, not an approximation: the
// fixed-width (16) kernel with the table and the run-time-width kernel that
// computes them give bit-identical rows, inside the table and past its end.
TEST(OptimizerTest, AdamBiasTableIsBitIdenticalToComputing) {
  internal::OptimizerParams computed;
  computed.lr = 0.003f;
  computed.weight_decay = 0.01f;
  computed.log_beta1 = std::log(0.9);
  computed.log_beta2 = std::log(0.999);
  internal::OptimizerParams cached = computed;
  std::vector<float> table(2 * 40);
  internal::AdamBiasTable(computed, 40, table.data());
  cached.adam_table = table.data();
  cached.adam_table_size = 40;
  constexpr size_t kWidth = 16;
  std::vector<float> a(3 * kWidth + 1, 0.0f), b(3 * kWidth + 1, 0.0f), g(kWidth);
  for (size_t c = 0; c < kWidth; ++c) a[c] = b[c] = 0.1f * static_cast<float>(c);
  for (int t = 0; t < 100; ++t) {
    for (size_t c = 0; c < kWidth; ++c) g[c] = Grad(3, t, static_cast<uint32_t>(c));
    internal::AdamStep(computed, kWidth, g.data(), a.data(), a.data() + kWidth);
    internal::AdamStep<kWidth>(cached, kWidth, g.data(), b.data(), b.data() + kWidth);
    ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << "step " << t;
  }
}

// Rows wider than Partition::kWideRowBytes take the table's wide-row path
// (prefetching only their head); the arithmetic must not change.
TEST(OptimizerTest, WideRowsFollowTheReferenceToo) {
  OptimizerOptions adam;
  adam.kind = OptimizerKind::kAdam;
  adam.learning_rate = 0.01f;
  CheckAgainstReference(adam, 300);
  OptimizerOptions momentum;
  momentum.learning_rate = 0.05f;
  momentum.momentum = 0.9f;
  CheckAgainstReference(momentum, 257);
}

// 16 floats take the fixed-width kernels (Staged rows), every other width the
// run-time-width loops: each optimizer through both.
TEST(OptimizerTest, SixteenFloatRowsFollowTheReference) {
  OptimizerOptions sgd;
  sgd.learning_rate = 0.05f;
  sgd.weight_decay = 0.1f;
  CheckAgainstReference(sgd, 16);
  OptimizerOptions momentum = sgd;
  momentum.momentum = 0.9f;
  CheckAgainstReference(momentum, 16);
  OptimizerOptions adagrad;
  adagrad.kind = OptimizerKind::kAdagrad;
  adagrad.learning_rate = 0.1f;
  adagrad.initial_accumulator = 0.1f;
  CheckAgainstReference(adagrad, 16);
  OptimizerOptions adam;
  adam.kind = OptimizerKind::kAdam;
  adam.learning_rate = 0.01f;
  adam.weight_decay = 0.001f;
  CheckAgainstReference(adam, 16);
}

TEST(OptimizerTest, StateFloats) {
  OptimizerOptions o;
  EXPECT_EQ(OptimizerStateFloats(o, 16), 0u);
  o.momentum = 0.9f;
  EXPECT_EQ(OptimizerStateFloats(o, 16), 16u);
  o.kind = OptimizerKind::kAdagrad;
  EXPECT_EQ(OptimizerStateFloats(o, 16), 16u);
  o.kind = OptimizerKind::kAdam;
  EXPECT_EQ(OptimizerStateFloats(o, 16), 33u);
}

}  // namespace
}  // namespace phalanx::ps
