// Model::DenseLossAndGradientFast (the simulator's small-batch kernel) against
// LossAndGradient: equal to float rounding on every shape the blocking has a
// path for (full 4x5 blocks, example/class tails, a feature tail), same
// contract on bad data, and bitwise-repeatable across threads.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "tests/worker/worker_test_util.h"
#include "worker/internal/random.h"
#include "worker/model.h"

namespace phalanx::worker {
namespace {

Dataset Dense(size_t n, size_t dim, size_t classes, uint64_t seed) {
  Dataset d;
  d.name = "dense";
  d.num_classes = classes;
  d.feature_dim = dim;
  d.features = testing::UniformVector(n * dim, 1.0f, seed);
  internal::SplitMix64 rng(seed + 1);
  for (size_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(rng.Next() % classes));
  return d;
}

std::unique_ptr<Model> Softmax(size_t dim, size_t classes, float l2) {
  ModelOptions o;
  o.kind = "softmax";
  o.input_dim = dim;
  o.num_classes = classes;
  o.l2 = l2;
  auto m = CreateModel(o);
  EXPECT_TRUE(m.ok());
  return std::move(m).value();
}

void ExpectClose(const Model& model, const Dataset& data, const std::vector<size_t>& idx,
                 const std::vector<float>& theta) {
  const size_t n = model.dense_size();
  std::vector<float> ref(n), fast(n, 123.0f);
  const float lr = model.LossAndGradient(data, idx, theta.data(), {}, ref.data(), nullptr);
  const float lf = model.DenseLossAndGradientFast(data, idx, theta.data(), fast.data());
  EXPECT_NEAR(lf, lr, 1e-5 * std::max(1.0f, std::abs(lr)));
  float scale = 1e-6f;
  for (float g : ref) scale = std::max(scale, std::abs(g));
  for (size_t j = 0; j < n; ++j) {
    ASSERT_NEAR(fast[j], ref[j], 1e-5f * scale) << "parameter " << j << " of " << n;
  }
}

TEST(ModelFastTest, SoftmaxMatchesLossAndGradientOnEveryBlockShape) {
  for (size_t dim : {784u, 7u, 16u, 100u}) {
    for (size_t classes : {10u, 2u, 3u, 11u}) {
      for (float l2 : {0.0f, 0.01f}) {
        const Dataset data = Dense(200, dim, classes, dim * 31 + classes);
        const auto model = Softmax(dim, classes, l2);
        const auto theta = testing::UniformVector(model->dense_size(), 0.1f, 7);
        for (size_t batch : {32u, 1u, 5u, 33u, 64u}) {
          std::vector<size_t> idx;
          for (size_t b = 0; b < batch; ++b) idx.push_back((b * 37 + 11) % data.size());
          SCOPED_TRACE(::testing::Message() << "dim " << dim << " classes " << classes << " l2 "
                                            << l2 << " batch " << batch);
          ExpectClose(*model, data, idx, theta);
        }
      }
    }
  }
}

TEST(ModelFastTest, SoftmaxMatchesOnFashionMnist) {
  const TrainTest* fm = testing::FashionMnist();
  PHX_REQUIRE_DATA(fm);
  const auto model = Softmax(784, 10, 0.0f);
  const auto theta = testing::UniformVector(model->dense_size(), 0.05f, 3);
  std::vector<size_t> idx;
  for (size_t b = 0; b < 32; ++b) idx.push_back(b * 1871 % fm->train.size());
  ExpectClose(*model, fm->train, idx, theta);
}

TEST(ModelFastTest, EmptyBatchAndBadDataKeepTheContract) {
  const Dataset data = Dense(10, 16, 3, 1);
  const auto model = Softmax(16, 3, 0.0f);
  const auto theta = testing::UniformVector(model->dense_size(), 0.1f, 2);
  std::vector<float> g(model->dense_size(), 5.0f);
  EXPECT_EQ(model->DenseLossAndGradientFast(data, {}, theta.data(), g.data()), 0.0f);
  for (float v : g) EXPECT_EQ(v, 0.0f);

  const std::vector<size_t> out_of_range = {0, 10};
  std::fill(g.begin(), g.end(), 5.0f);
  EXPECT_TRUE(
      std::isnan(model->DenseLossAndGradientFast(data, out_of_range, theta.data(), g.data())));
  for (float v : g) EXPECT_EQ(v, 0.0f);

  Dataset bad_label = data;
  bad_label.labels[1] = 3;
  const std::vector<size_t> one = {1};
  EXPECT_TRUE(std::isnan(model->DenseLossAndGradientFast(bad_label, one, theta.data(), g.data())));

  const Dataset wrong_dim = Dense(10, 15, 3, 1);
  EXPECT_TRUE(std::isnan(model->DenseLossAndGradientFast(wrong_dim, one, theta.data(), g.data())));
}

TEST(ModelFastTest, MlpFallsBackToLossAndGradientBitwise) {
  ModelOptions o;
  o.kind = "mlp";
  o.input_dim = 20;
  o.hidden = 8;
  o.num_classes = 4;
  auto model = CreateModel(o);
  ASSERT_TRUE(model.ok());
  const Dataset data = Dense(50, 20, 4, 9);
  const auto theta = testing::UniformVector((*model)->dense_size(), 0.2f, 4);
  const std::vector<size_t> idx = {3, 1, 4, 1, 5, 9, 2, 6};
  std::vector<float> ref((*model)->dense_size()), fast(ref.size());
  const float lr = (*model)->LossAndGradient(data, idx, theta.data(), {}, ref.data(), nullptr);
  const float lf = (*model)->DenseLossAndGradientFast(data, idx, theta.data(), fast.data());
  EXPECT_EQ(lr, lf);
  EXPECT_EQ(ref, fast);
}

TEST(ModelFastTest, SoftmaxIsBitwiseRepeatableOnAnyThread) {
  const Dataset data = Dense(100, 784, 10, 5);
  const auto model = Softmax(784, 10, 0.0f);
  const auto theta = testing::UniformVector(model->dense_size(), 0.1f, 6);
  std::vector<size_t> idx;
  for (size_t b = 0; b < 32; ++b) idx.push_back(b * 3 % data.size());
  std::vector<float> here(model->dense_size()), there(model->dense_size());
  const float lh = model->DenseLossAndGradientFast(data, idx, theta.data(), here.data());
  float lt = 0;
  std::thread t(
      [&] { lt = model->DenseLossAndGradientFast(data, idx, theta.data(), there.data()); });
  t.join();
  EXPECT_EQ(lh, lt);
  EXPECT_EQ(here, there);
}

}  // namespace
}  // namespace phalanx::worker
