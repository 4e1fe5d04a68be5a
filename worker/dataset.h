#pragma once
// Data sets held by a worker. A Dataset is immutable after loading and can be
// read from any thread.

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace phalanx::worker {

// Examples are either dense (features: num_examples x feature_dim, row-major)
// or sparse (ids: per-example 64-bit feature ids, e.g. hashed tokens, with
// optional per-id values; empty values means 1.0 each).
struct Dataset {
  std::string name;
  size_t num_classes = 0;
  std::vector<int32_t> labels;  // one per example, in [0, num_classes)

  size_t feature_dim = 0;       // dense only
  std::vector<float> features;  // dense only

  std::vector<std::vector<uint64_t>> ids;  // sparse only
  std::vector<std::vector<float>> values;  // sparse only (may be empty)

  size_t size() const { return labels.size(); }
  bool dense() const { return feature_dim > 0; }
  const float* row(size_t i) const { return features.data() + i * feature_dim; }
};

struct TrainTest {
  Dataset train;
  Dataset test;
};

// The Debian package dataset-fashion-mnist installs the files here.
inline constexpr char kDefaultFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// Fashion-MNIST from its IDX files (plain or .gz) in `dir`; pixels scaled to
// [0, 1]. NotFound with the path when a file is missing, DataLoss when corrupt.
// Files: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. Magic numbers,
// dimensions, image/label counts, label range and exact file lengths are
// checked. Takes about 0.5 s (gunzip dominates).
Result<TrainTest> LoadFashionMnist(const std::string& dir);

// Fashion-MNIST without its pixels: what LoadFashionMnist gives with empty
// `features` (labels, classes and feature_dim set; every header checked). A
// worker reads this before it knows its shard and then only its shard's
// pixels (LoadFashionMnistRows), so that it never holds the whole training
// set (188 MB as floats) or the whole image file.
Result<TrainTest> LoadFashionMnistLabels(const std::string& dir);

// Examples `idx` (in that order; repeats allowed) of the split `split`
// ("train" or "t10k") whose labels-only set is `labels` (from
// LoadFashionMnistLabels, possibly truncated): SubsetDataset of the loaded
// split, read in one streaming pass over its image file. InvalidArgument for
// an index >= labels.size(); the file errors of LoadFashionMnist.
Result<Dataset> LoadFashionMnistRows(const std::string& dir, const std::string& split,
                                     const Dataset& labels, const std::vector<size_t>& idx);

struct SpamOptions {
  uint64_t seed = 1;  // for the train/test split
  double test_fraction = 0.2;
  bool bigrams = true;
  size_t max_tokens_per_mail = 2000;
};
// SpamAssassin raw mails from the npm package's data/ folder: easy-ham-1/2 and
// hard-ham-1 are label 0, spam-1/2 label 1. Tokens (lower-cased words) and
// bigrams are hashed (xxHash64) to ids. Stratified split by `seed`.
// Only the *.txt mails are read (the .json siblings duplicate them). Features
// are the Subject's and the body's words and bigrams; other headers are
// dropped (see worker/internal/mail_tokenizer.h). Each example's ids are sorted
// and distinct; values is empty (every id weighs 1). The id space does not
// depend on `seed`. NotFound (with a hint to run scripts/setup.sh) when a
// folder is missing, InvalidArgument for a test_fraction outside [0, 1).
Result<TrainTest> LoadSpamAssassin(const std::string& data_dir, const SpamOptions& options);

// libsvm text format: "label idx:val idx:val ...". Labels are mapped to
// 0..k-1 in sorted order of the distinct labels seen; ids are the indices.
// Also accepted: blank lines, "# comments" (whole-line or trailing), a
// "qid:n" token (ignored), and gzip-compressed files. A malformed line gives
// InvalidArgument "path:line: ..."; a missing file NotFound. values is empty
// when every value is 1 (binary features), else aligned with ids.
Result<Dataset> LoadLibsvm(const std::string& path);

// Deterministic shard `rank` of `world` (strided over a seeded permutation).
// Shards of one (num_examples, world, seed) are disjoint and cover
// [0, num_examples); their sizes differ by at most one. The order within a
// shard is the permuted order (so it is already shuffled). Empty when
// world <= 0 or rank is not in [0, world).
std::vector<size_t> ShardIndices(size_t num_examples, int rank, int world, uint64_t seed);

// Keeps the first `max_examples` examples (0 = keep all), e.g. for
// DataConfig::max_train. Fashion-MNIST files and the spam split are already in
// random order, so a prefix is a fair sample. A set without its pixels
// (LoadFashionMnistLabels) stays without them.
void TruncateDataset(Dataset* data, size_t max_examples);

// The examples `idx` of `data`, in that order (e.g. a federated client's
// partition). Indices must be < data.size().
Dataset SubsetDataset(const Dataset& data, const std::vector<size_t>& idx);

// Replaces *data by the examples *shard names, in that order, and renumbers
// *shard to 0..k-1, so that example (*shard)[j] is the same example before
// and after: a worker keeps its own shard and frees the rest of the set (a
// Fashion-MNIST worker of 64 holds 3 MB instead of 188 MB). Indices must be
// < data->size(); repeated indices are copied once per occurrence.
void KeepShard(Dataset* data, std::vector<size_t>* shard);

// Frees every example of *data (the memory too, not only the size); the
// name, class count and feature dimension stay.
void ReleaseExamples(Dataset* data);

}  // namespace phalanx::worker
