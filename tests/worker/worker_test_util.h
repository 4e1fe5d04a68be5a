#pragma once
// Shared helpers for the worker tests: the real data sets, loaded once per
// test binary (Fashion-MNIST alone takes ~0.5 s), and scratch directories.
// Not thread-safe beyond C++'s guarantee for function-local statics; gtest
// runs cases on one thread.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "worker/dataset.h"
#include "worker/internal/random.h"

namespace phalanx::worker::testing {

// n values uniform in [-scale, scale], like the PS initializer.
inline std::vector<float> UniformVector(size_t n, float scale, uint64_t seed) {
  internal::SplitMix64 rng(seed);
  std::vector<float> v(n);
  for (float& x : v) {
    x = (static_cast<float>(rng.Next() >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f) * scale;
  }
  return v;
}

inline std::string SpamDir() { return std::string(PHX_SOURCE_DIR) + "/data/spam-assassin/data"; }

// nullptr when the data is not installed (the caller skips).
inline const TrainTest* FashionMnist() {
  static const Result<TrainTest>* cached =
      new Result<TrainTest>(LoadFashionMnist(kDefaultFashionMnistDir));
  return cached->ok() ? &cached->value() : nullptr;
}

inline const TrainTest* SpamAssassin() {
  static const Result<TrainTest>* cached =
      new Result<TrainTest>(LoadSpamAssassin(SpamDir(), SpamOptions{}));
  return cached->ok() ? &cached->value() : nullptr;
}

#define PHX_REQUIRE_DATA(ptr)                                                        \
  if ((ptr) == nullptr) {                                                            \
    GTEST_SKIP() << "data set not installed; run scripts/setup.sh to run this test"; \
  }

// A fresh directory under the gtest temp dir, removed on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::path(::testing::TempDir()) /
            ("phx_worker_" + std::string(info->test_suite_name()) + "_" + info->name());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  std::string path() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace phalanx::worker::testing
