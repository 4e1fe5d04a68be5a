#include "worker/dataset.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "tests/worker/worker_test_util.h"
#include "worker/internal/mail_tokenizer.h"

namespace phalanx::worker {
namespace {

using testing::ScratchDir;

// ---- Fashion-MNIST on the real files ----

TEST(FashionMnistTest, LoadsRealData) {
  const TrainTest* tt = testing::FashionMnist();
  PHX_REQUIRE_DATA(tt);
  EXPECT_EQ(tt->train.size(), 60000u);
  EXPECT_EQ(tt->test.size(), 10000u);
  for (const Dataset* d : {&tt->train, &tt->test}) {
    EXPECT_EQ(d->feature_dim, 784u);
    EXPECT_EQ(d->num_classes, 10u);
    EXPECT_EQ(d->features.size(), d->size() * 784);
    EXPECT_TRUE(d->dense());
    // Fashion-MNIST is exactly balanced: 6000 / 1000 examples per class.
    std::vector<size_t> per_class(10, 0);
    for (int32_t l : d->labels) {
      ASSERT_GE(l, 0);
      ASSERT_LT(l, 10);
      ++per_class[l];
    }
    for (size_t c : per_class) EXPECT_EQ(c, d->size() / 10);
    const auto [lo, hi] = std::minmax_element(d->features.begin(), d->features.end());
    EXPECT_EQ(*lo, 0.0f);
    EXPECT_EQ(*hi, 1.0f);
  }
}

TEST(FashionMnistTest, MissingDirectoryIsNotFoundWithHint) {
  auto r = LoadFashionMnist("/nonexistent/fashion");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/fashion"), std::string::npos);
  EXPECT_NE(r.status().message().find("scripts/setup.sh"), std::string::npos);
}

// ---- Fashion-MNIST format checks on synthetic IDX files ----

std::vector<uint8_t> Be32(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

std::vector<uint8_t> IdxImages(uint32_t n, uint32_t rows = 28, uint32_t cols = 28) {
  std::vector<uint8_t> out = Be32(0x00000803);
  for (uint32_t d : {n, rows, cols}) {
    auto b = Be32(d);
    out.insert(out.end(), b.begin(), b.end());
  }
  for (size_t i = 0; i < size_t{n} * rows * cols; ++i) out.push_back(static_cast<uint8_t>(i));
  return out;
}

std::vector<uint8_t> IdxLabels(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> out = Be32(0x00000801);
  auto b = Be32(static_cast<uint32_t>(labels.size()));
  out.insert(out.end(), b.begin(), b.end());
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

void WritePlain(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void WriteGzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

// Writes a complete, valid small Fashion-MNIST directory (3 train, 2 test).
void WriteValidFashion(const ScratchDir& dir, bool gzip) {
  auto write = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    if (gzip) {
      WriteGzip(dir / (name + ".gz"), bytes);
    } else {
      WritePlain(dir / name, bytes);
    }
  };
  write("train-images-idx3-ubyte", IdxImages(3));
  write("train-labels-idx1-ubyte", IdxLabels({0, 9, 4}));
  write("t10k-images-idx3-ubyte", IdxImages(2));
  write("t10k-labels-idx1-ubyte", IdxLabels({1, 2}));
}

TEST(FashionMnistTest, ReadsPlainAndGzipFiles) {
  for (bool gzip : {false, true}) {
    ScratchDir dir;
    WriteValidFashion(dir, gzip);
    auto r = LoadFashionMnist(dir.path());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->train.size(), 3u);
    EXPECT_EQ(r->test.size(), 2u);
    EXPECT_EQ(r->train.labels, (std::vector<int32_t>{0, 9, 4}));
    EXPECT_EQ(r->train.feature_dim, 784u);
    EXPECT_FLOAT_EQ(r->train.features[1], 1.0f / 255.0f);
    EXPECT_FLOAT_EQ(r->train.features[255], 1.0f);
  }
}

// Replaces one file of a valid directory and expects `code` naming the file.
void ExpectBroken(const std::string& file, const std::vector<uint8_t>& bytes, StatusCode code,
                  const std::string& what) {
  ScratchDir dir;
  WriteValidFashion(dir, /*gzip=*/false);
  WritePlain(dir / file, bytes);
  auto r = LoadFashionMnist(dir.path());
  ASSERT_FALSE(r.ok()) << what;
  EXPECT_EQ(r.status().code(), code) << what << ": " << r.status().ToString();
  EXPECT_NE(r.status().message().find(file), std::string::npos) << r.status().ToString();
}

TEST(FashionMnistTest, CorruptFilesAreDataLoss) {
  auto truncated = IdxImages(3);
  truncated.resize(truncated.size() - 100);
  ExpectBroken("train-images-idx3-ubyte", truncated, StatusCode::kDataLoss, "truncated images");

  auto trailing = IdxImages(3);
  trailing.push_back(0);
  ExpectBroken("train-images-idx3-ubyte", trailing, StatusCode::kDataLoss, "trailing byte");

  auto bad_magic = IdxImages(3);
  bad_magic[3] = 0x02;
  ExpectBroken("train-images-idx3-ubyte", bad_magic, StatusCode::kDataLoss, "bad magic");

  ExpectBroken("t10k-images-idx3-ubyte", {0, 0}, StatusCode::kDataLoss, "two-byte file");
  ExpectBroken("t10k-labels-idx1-ubyte", {}, StatusCode::kDataLoss, "empty file");
  ExpectBroken("train-labels-idx1-ubyte", IdxLabels({0, 1}), StatusCode::kDataLoss,
               "count mismatch");
  ExpectBroken("train-labels-idx1-ubyte", IdxLabels({0, 1, 10}), StatusCode::kDataLoss,
               "label out of range");
  // Labels file with images magic.
  auto swapped = IdxLabels({0, 1, 2});
  swapped[3] = 0x03;
  ExpectBroken("train-labels-idx1-ubyte", swapped, StatusCode::kDataLoss, "wrong rank");
}

TEST(FashionMnistTest, TruncatedGzipIsDataLoss) {
  ScratchDir dir;
  WriteValidFashion(dir, /*gzip=*/true);
  const std::string path = dir / "train-images-idx3-ubyte.gz";
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
  auto r = LoadFashionMnist(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().ToString();
}

TEST(FashionMnistTest, MissingFileIsNotFound) {
  ScratchDir dir;
  WriteValidFashion(dir, /*gzip=*/true);
  std::filesystem::remove(dir / "t10k-labels-idx1-ubyte.gz");
  auto r = LoadFashionMnist(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("t10k-labels-idx1-ubyte"), std::string::npos);
  EXPECT_NE(r.status().message().find("scripts/setup.sh"), std::string::npos);
}

// ---- SpamAssassin ----

TEST(SpamAssassinTest, LoadsRealCorpusStratified) {
  const TrainTest* tt = testing::SpamAssassin();
  PHX_REQUIRE_DATA(tt);
  const size_t total = tt->train.size() + tt->test.size();
  EXPECT_GT(total, 5500u);
  EXPECT_LT(total, 6500u);
  auto spam = [](const Dataset& d) {
    return static_cast<size_t>(std::count(d.labels.begin(), d.labels.end(), 1));
  };
  const double spam_fraction = static_cast<double>(spam(tt->train) + spam(tt->test)) / total;
  EXPECT_GT(spam_fraction, 0.25);
  EXPECT_LT(spam_fraction, 0.40);
  // Default test_fraction 0.2, per class (stratified), so the two sets have
  // the same spam fraction up to rounding.
  EXPECT_NEAR(static_cast<double>(tt->test.size()) / total, 0.2, 0.002);
  EXPECT_NEAR(static_cast<double>(spam(tt->test)) / tt->test.size(),
              static_cast<double>(spam(tt->train)) / tt->train.size(), 0.005);
  for (const Dataset* d : {&tt->train, &tt->test}) {
    EXPECT_EQ(d->num_classes, 2u);
    EXPECT_FALSE(d->dense());
    EXPECT_EQ(d->ids.size(), d->size());
    EXPECT_TRUE(d->values.empty());
    size_t empty = 0;
    for (const auto& ids : d->ids) {
      ASSERT_TRUE(std::is_sorted(ids.begin(), ids.end()));
      ASSERT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
      if (ids.empty()) ++empty;
    }
    EXPECT_LT(empty, d->size() / 100);
  }
}

TEST(SpamAssassinTest, SplitIsDeterministicBySeed) {
  const TrainTest* a = testing::SpamAssassin();
  PHX_REQUIRE_DATA(a);
  auto b = LoadSpamAssassin(testing::SpamDir(), SpamOptions{});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(a->train.labels, b->train.labels);
  EXPECT_EQ(a->train.ids, b->train.ids);
  EXPECT_EQ(a->test.ids, b->test.ids);

  SpamOptions other;
  other.seed = 2;
  auto c = LoadSpamAssassin(testing::SpamDir(), other);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->test.size(), a->test.size());  // same stratified sizes
  EXPECT_NE(c->test.ids, a->test.ids);        // different mails
}

TEST(SpamAssassinTest, BadArgumentsAndMissingFolders) {
  SpamOptions bad;
  bad.test_fraction = 1.0;
  EXPECT_EQ(LoadSpamAssassin(testing::SpamDir(), bad).status().code(),
            StatusCode::kInvalidArgument);
  auto r = LoadSpamAssassin("/nonexistent/spam", SpamOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/spam/easy-ham-1"), std::string::npos);
  EXPECT_NE(r.status().message().find("scripts/setup.sh"), std::string::npos);
}

// A tiny corpus: checks folder labels, that .json siblings are ignored, and
// the split arithmetic, in milliseconds.
TEST(SpamAssassinTest, SyntheticCorpus) {
  ScratchDir dir;
  const char* folders[] = {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"};
  for (int f = 0; f < 5; ++f) {
    std::filesystem::create_directories(dir / folders[f]);
    for (int i = 0; i < 10; ++i) {
      std::ofstream(dir / (std::string(folders[f]) + "/" + std::to_string(i) + ".txt"))
          << "From: x@y\nSubject: mail f" << f << "\n\nbody words number n" << i << "\n";
      std::ofstream(dir / (std::string(folders[f]) + "/" + std::to_string(i) + ".json"))
          << "{\"text\": \"ignored\"}";
    }
  }
  SpamOptions options;
  options.test_fraction = 0.3;
  auto r = LoadSpamAssassin(dir.path(), options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->train.size() + r->test.size(), 50u);
  EXPECT_EQ(r->test.size(), 15u);  // 9 of 30 ham + 6 of 20 spam
  EXPECT_EQ(std::count(r->test.labels.begin(), r->test.labels.end(), 1), 6);
  EXPECT_EQ(std::count(r->train.labels.begin(), r->train.labels.end(), 1), 14);
  // Every mail is distinct, so the 50 id sets are distinct.
  std::set<std::vector<uint64_t>> distinct(r->train.ids.begin(), r->train.ids.end());
  distinct.insert(r->test.ids.begin(), r->test.ids.end());
  EXPECT_EQ(distinct.size(), 50u);
}

TEST(MailTokenizerTest, SubjectAndBodyWordsLowercasedHeadersDropped) {
  internal::TokenizerOptions options;
  options.bigrams = false;
  const auto ids = internal::TokenizeMail(
      "Received: from relay\nSubject: Cheap Pills\n  today\n\nBuy CHEAP pills now! x", options);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  // Body: buy, cheap, pills, now ("x" is too short). Subject: cheap, pills,
  // today in their own namespace. "received"/"relay" are dropped.
  EXPECT_EQ(ids.size(), 7u);
  for (const char* w : {"buy", "cheap", "pills", "now"}) {
    EXPECT_TRUE(std::binary_search(ids.begin(), ids.end(), internal::WordId(w))) << w;
  }
  for (const char* w : {"received", "relay", "today", "x"}) {
    EXPECT_FALSE(std::binary_search(ids.begin(), ids.end(), internal::WordId(w))) << w;
  }
  options.bigrams = true;
  const auto with_bigrams =
      internal::TokenizeMail("Subject: Cheap Pills\n  today\n\nBuy CHEAP pills now! x", options);
  EXPECT_EQ(with_bigrams.size(), 7u + 2u + 3u);  // subject bigrams 2, body bigrams 3
  // Repeated words count once; a mail without a blank line is all headers.
  EXPECT_EQ(internal::TokenizeMail("Subject: a\n\nspam spam spam", options).size(), 2u);
  EXPECT_TRUE(internal::TokenizeMail("Subject only header", options).empty());
}

// ---- libsvm ----

std::string WriteText(const ScratchDir& dir, const std::string& text) {
  const std::string path = dir / "data.libsvm";
  std::ofstream(path) << text;
  return path;
}

TEST(LibsvmTest, ParsesLabelsIdsValuesAndComments) {
  ScratchDir dir;
  auto r = LoadLibsvm(WriteText(dir,
                                "# header comment\n"
                                "+1 1:0.5 3:2\n"
                                "-1 2:1   # trailing comment\n"
                                "\n"
                                "1 qid:3 7:1e-1\r\n"
                                "-1\n"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->size(), 4u);
  EXPECT_EQ(r->num_classes, 2u);
  EXPECT_EQ(r->labels, (std::vector<int32_t>{1, 0, 1, 0}));
  EXPECT_EQ(r->ids[0], (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(r->ids[2], (std::vector<uint64_t>{7}));
  EXPECT_TRUE(r->ids[3].empty());
  ASSERT_EQ(r->values.size(), 4u);
  EXPECT_EQ(r->values[0], (std::vector<float>{0.5f, 2.0f}));
  EXPECT_FLOAT_EQ(r->values[2][0], 0.1f);
  EXPECT_FALSE(r->dense());
}

TEST(LibsvmTest, MulticlassLabelsSortedAndBinaryValuesDropped) {
  ScratchDir dir;
  auto r = LoadLibsvm(WriteText(dir, "3 1:1\n10 2:1\n3 5:1\n-2 4:1\n"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->num_classes, 3u);
  EXPECT_EQ(r->labels, (std::vector<int32_t>{1, 2, 1, 0}));
  EXPECT_TRUE(r->values.empty());  // all 1: binary features
}

TEST(LibsvmTest, MalformedLinesNameTheLine) {
  struct Case {
    const char* text;
    const char* expect;  // in the message
  };
  const Case cases[] = {
      {"1 1:1\nabc 1:1\n", ":2: bad label 'abc'"},
      {"1 1:1\n1 2:x\n", ":2: bad value 'x'"},
      {"1 1:1\n\n1 5\n", ":3: expected index:value, got '5'"},
      {"1 -3:1\n", ":1: bad feature index '-3'"},
      {"1 1:nan\n", ":1: bad value 'nan'"},
      {"1 1:1:2\n", ":1: bad value '1:2'"},
      {"1 :1\n", ":1: bad feature index ''"},
  };
  for (const Case& c : cases) {
    ScratchDir dir;
    auto r = LoadLibsvm(WriteText(dir, c.text));
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << "got: " << r.status().message();
  }
}

TEST(LibsvmTest, MissingAndEmptyFiles) {
  EXPECT_EQ(LoadLibsvm("/nonexistent/x.libsvm").status().code(), StatusCode::kNotFound);
  ScratchDir dir;
  EXPECT_EQ(LoadLibsvm(WriteText(dir, "# nothing\n\n")).status().code(),
            StatusCode::kInvalidArgument);
}

// ---- sharding and subsets ----

TEST(ShardIndicesTest, DisjointCoveringBalancedDeterministic) {
  for (size_t n : {0u, 1u, 7u, 1003u}) {
    for (int world : {1, 3, 4}) {
      std::vector<int> seen(n, 0);
      for (int rank = 0; rank < world; ++rank) {
        const auto shard = ShardIndices(n, rank, world, 42);
        EXPECT_EQ(shard, ShardIndices(n, rank, world, 42));
        EXPECT_LE(shard.size(), n / world + 1);
        EXPECT_GE(shard.size(), n / world);
        for (size_t i : shard) {
          ASSERT_LT(i, n);
          ++seen[i];
        }
      }
      for (size_t i = 0; i < n; ++i) EXPECT_EQ(seen[i], 1) << "n=" << n << " world=" << world;
    }
  }
  EXPECT_NE(ShardIndices(1000, 0, 2, 1), ShardIndices(1000, 0, 2, 2));
  // The permutation is shuffled, not the identity.
  const auto all = ShardIndices(1000, 0, 1, 1);
  EXPECT_FALSE(std::is_sorted(all.begin(), all.end()));
  EXPECT_TRUE(ShardIndices(10, 2, 2, 1).empty());
  EXPECT_TRUE(ShardIndices(10, -1, 2, 1).empty());
  EXPECT_TRUE(ShardIndices(10, 0, 0, 1).empty());
}

TEST(DatasetTest, TruncateAndSubset) {
  Dataset d;
  d.num_classes = 2;
  d.feature_dim = 2;
  d.labels = {0, 1, 0};
  d.features = {1, 2, 3, 4, 5, 6};
  Dataset s = SubsetDataset(d, {2, 0});
  EXPECT_EQ(s.labels, (std::vector<int32_t>{0, 0}));
  EXPECT_EQ(s.features, (std::vector<float>{5, 6, 1, 2}));
  TruncateDataset(&d, 2);
  EXPECT_EQ(d.size(), 2u);
  EXPECT_EQ(d.features.size(), 4u);
  TruncateDataset(&d, 0);  // 0 keeps all
  EXPECT_EQ(d.size(), 2u);
}

}  // namespace
}  // namespace phalanx::worker
