#include "worker/dataset.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "worker/internal/file_reader.h"
#include "worker/internal/mail_tokenizer.h"
#include "worker/internal/random.h"

namespace phalanx::worker {
namespace {

namespace fs = std::filesystem;
using internal::IdxArray;

constexpr char kSetupHint[] = " (run scripts/setup.sh to install the data sets)";

// Finds `dir/base` or `dir/base.gz`, preferring the compressed file (that is
// what the Debian package ships).
Result<std::string> FindIdxFile(const std::string& dir, const std::string& base) {
  std::error_code ec;
  const std::string plain = (fs::path(dir) / base).string();
  const std::string gz = plain + ".gz";
  if (fs::is_regular_file(gz, ec)) return gz;
  if (fs::is_regular_file(plain, ec)) return plain;
  return NotFound("Fashion-MNIST file " + gz + " (or " + base + ") not found" + kSetupHint);
}

Result<IdxArray> LoadIdx(const std::string& dir, const std::string& base, size_t rank) {
  PHX_ASSIGN_OR_RETURN(std::string path, FindIdxFile(dir, base));
  PHX_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, internal::ReadMaybeGzipFile(path));
  return internal::ParseIdx(std::move(bytes), rank, path);
}

// One split ("train" or "t10k") of Fashion-MNIST without its pixels: the
// labels, checked against the image file's header.
Result<Dataset> LoadFashionLabels(const std::string& dir, const std::string& split) {
  PHX_ASSIGN_OR_RETURN(std::string images_path, FindIdxFile(dir, split + "-images-idx3-ubyte"));
  PHX_ASSIGN_OR_RETURN(auto images, internal::IdxStream::Open(images_path, 3));
  PHX_ASSIGN_OR_RETURN(IdxArray labels, LoadIdx(dir, split + "-labels-idx1-ubyte", 1));
  const size_t n = images->dims()[0];
  if (labels.dims[0] != n) {
    return DataLoss("Fashion-MNIST " + split + ": " + std::to_string(n) + " images in " +
                    images_path + " but " + std::to_string(labels.dims[0]) + " labels in " +
                    labels.path);
  }
  if (images->record_bytes() == 0) {
    return DataLoss("Fashion-MNIST " + split + ": empty image dimensions in " + images_path);
  }
  constexpr size_t kClasses = 10;
  Dataset out;
  out.name = "fashion-mnist-" + split;
  out.num_classes = kClasses;
  out.feature_dim = images->record_bytes();
  out.labels.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (labels.data[i] >= kClasses) {
      return DataLoss("Fashion-MNIST " + split + ": label " + std::to_string(labels.data[i]) +
                      " of example " + std::to_string(i) + " is not in [0, 10) in " + labels.path);
    }
    out.labels[i] = labels.data[i];
  }
  return out;
}

// The spam corpus folders and their labels.
struct MailFolder {
  const char* name;
  int32_t label;
};
constexpr MailFolder kMailFolders[] = {
    {"easy-ham-1", 0}, {"easy-ham-2", 0}, {"hard-ham-1", 0}, {"spam-1", 1}, {"spam-2", 1}};

Result<std::vector<uint8_t>> ReadPlainFile(const std::string& path) {
  // Mails are small and never compressed; the gzip-transparent reader handles
  // plain files too and gives uniform errors.
  return internal::ReadMaybeGzipFile(path);
}

// Parses a libsvm label with from_chars (locale-independent, no exceptions).
bool ParseDouble(std::string_view s, double* out) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(*out);
}

bool ParseFloat(std::string_view s, float* out) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(*out);
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// Labels with more distinct values than this are almost surely a regression
// target, which a classifier cannot use.
constexpr size_t kMaxLibsvmClasses = 10000;

}  // namespace

Result<TrainTest> LoadFashionMnist(const std::string& dir) {
  PHX_ASSIGN_OR_RETURN(TrainTest labels, LoadFashionMnistLabels(dir));
  std::vector<size_t> all_train(labels.train.size()), all_test(labels.test.size());
  std::iota(all_train.begin(), all_train.end(), size_t{0});
  std::iota(all_test.begin(), all_test.end(), size_t{0});
  TrainTest out;
  PHX_ASSIGN_OR_RETURN(out.train, LoadFashionMnistRows(dir, "train", labels.train, all_train));
  PHX_ASSIGN_OR_RETURN(out.test, LoadFashionMnistRows(dir, "t10k", labels.test, all_test));
  return out;
}

Result<TrainTest> LoadFashionMnistLabels(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return NotFound("Fashion-MNIST directory " + dir + " not found" + kSetupHint);
  }
  TrainTest out;
  PHX_ASSIGN_OR_RETURN(out.train, LoadFashionLabels(dir, "train"));
  PHX_ASSIGN_OR_RETURN(out.test, LoadFashionLabels(dir, "t10k"));
  if (out.train.feature_dim != out.test.feature_dim) {
    return DataLoss("Fashion-MNIST train and test images differ in size in " + dir);
  }
  return out;
}

Result<Dataset> LoadFashionMnistRows(const std::string& dir, const std::string& split,
                                     const Dataset& labels, const std::vector<size_t>& idx) {
  PHX_ASSIGN_OR_RETURN(std::string path, FindIdxFile(dir, split + "-images-idx3-ubyte"));
  PHX_ASSIGN_OR_RETURN(auto images, internal::IdxStream::Open(path, 3));
  const size_t n = images->dims()[0];
  const size_t dim = images->record_bytes();
  if (dim != labels.feature_dim || n < labels.size()) {
    return DataLoss(path + " changed since its labels were read");
  }
  Dataset out;
  out.name = labels.name;
  out.num_classes = labels.num_classes;
  out.feature_dim = dim;
  out.labels.reserve(idx.size());
  // (example, position in the output) by example: one pass over the file
  // converts every wanted image where it goes.
  std::vector<std::pair<size_t, size_t>> wanted;
  wanted.reserve(idx.size());
  for (size_t j = 0; j < idx.size(); ++j) {
    if (idx[j] >= labels.size()) {
      return InvalidArgument("Fashion-MNIST " + split + ": example " + std::to_string(idx[j]) +
                             " asked for, but it has " + std::to_string(labels.size()));
    }
    out.labels.push_back(labels.labels[idx[j]]);
    wanted.emplace_back(idx[j], j);
  }
  std::sort(wanted.begin(), wanted.end());
  out.features.resize(idx.size() * dim);
  constexpr float kScale = 1.0f / 255.0f;
  constexpr size_t kBlock = 512;  // images per read
  std::vector<uint8_t> block(kBlock * dim);
  auto next = wanted.begin();
  // Every image is read, wanted or not, so that a truncated or overlong file
  // is refused as LoadFashionMnist refuses it.
  for (size_t first = 0; first < n; first += kBlock) {
    const size_t count = std::min(kBlock, n - first);
    PHX_RETURN_IF_ERROR(images->Read(count, block.data()));
    for (; next != wanted.end() && next->first < first + count; ++next) {
      const uint8_t* src = block.data() + (next->first - first) * dim;
      std::transform(src, src + dim,
                     out.features.begin() + static_cast<std::ptrdiff_t>(next->second * dim),
                     [](uint8_t p) { return static_cast<float>(p) * kScale; });
    }
  }
  PHX_RETURN_IF_ERROR(images->Finish());
  return out;
}

Result<TrainTest> LoadSpamAssassin(const std::string& data_dir, const SpamOptions& options) {
  if (!(options.test_fraction >= 0.0 && options.test_fraction < 1.0)) {
    return InvalidArgument("spam-assassin test_fraction must be in [0, 1), got " +
                           std::to_string(options.test_fraction));
  }
  if (options.max_tokens_per_mail == 0) {
    return InvalidArgument("spam-assassin max_tokens_per_mail must be positive");
  }
  // Collect the mail files in a fixed order (folder, then file name) so that
  // example numbering, and hence the split, is the same everywhere.
  std::vector<std::string> paths;
  std::vector<int32_t> labels;
  for (const MailFolder& folder : kMailFolders) {
    const fs::path dir = fs::path(data_dir) / folder.name;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      return NotFound("SpamAssassin folder " + dir.string() + " not found" + kSetupHint);
    }
    std::vector<std::string> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".txt") files.push_back(it->path().string());
    }
    if (ec) return NotFound("cannot list " + dir.string() + ": " + ec.message());
    if (files.empty()) {
      return NotFound("SpamAssassin folder " + dir.string() + " has no *.txt mails" + kSetupHint);
    }
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      paths.push_back(std::move(f));
      labels.push_back(folder.label);
    }
  }

  // Read and tokenize in parallel; each task writes only its own slots.
  const size_t n = paths.size();
  std::vector<std::vector<uint64_t>> ids(n);
  std::vector<Status> errors(n);
  internal::TokenizerOptions tok;
  tok.bigrams = options.bigrams;
  tok.max_tokens = options.max_tokens_per_mail;
  tbb::parallel_for(size_t{0}, n, [&](size_t i) {
    auto bytes = ReadPlainFile(paths[i]);
    if (!bytes.ok()) {
      errors[i] = bytes.status();
      return;
    }
    const std::string_view text(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    ids[i] = internal::TokenizeMail(text, tok);
  });
  for (const Status& s : errors) PHX_RETURN_IF_ERROR(s);

  // Stratified split: shuffle each class with its own seed stream and send
  // round(test_fraction * class size) of it to the test set.
  std::vector<size_t> train_idx, test_idx;
  for (int32_t c = 0; c < 2; ++c) {
    std::vector<size_t> cls;
    for (size_t i = 0; i < n; ++i) {
      if (labels[i] == c) cls.push_back(i);
    }
    internal::Shuffle(&cls, options.seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(c));
    const auto n_test =
        static_cast<size_t>(std::llround(options.test_fraction * static_cast<double>(cls.size())));
    test_idx.insert(test_idx.end(), cls.begin(), cls.begin() + static_cast<std::ptrdiff_t>(n_test));
    train_idx.insert(train_idx.end(), cls.begin() + static_cast<std::ptrdiff_t>(n_test), cls.end());
  }
  // Interleave the classes so that prefixes (TruncateDataset) stay balanced.
  internal::Shuffle(&train_idx, options.seed ^ 0x747261696eULL);
  internal::Shuffle(&test_idx, options.seed ^ 0x74657374ULL);

  auto build = [&](const std::vector<size_t>& idx, const char* name) {
    Dataset d;
    d.name = std::string("spam-assassin-") + name;
    d.num_classes = 2;
    d.labels.reserve(idx.size());
    d.ids.reserve(idx.size());
    for (size_t i : idx) {
      d.labels.push_back(labels[i]);
      d.ids.push_back(std::move(ids[i]));
    }
    return d;
  };
  TrainTest out;
  out.train = build(train_idx, "train");
  out.test = build(test_idx, "test");
  return out;
}

Result<Dataset> LoadLibsvm(const std::string& path) {
  PHX_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, internal::ReadMaybeGzipFile(path));
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());

  std::vector<double> raw_labels;
  Dataset out;
  out.name = fs::path(path).filename().string();
  std::vector<std::vector<float>> values;
  bool all_ones = true;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) {
      line = line.substr(0, hash);
    }
    auto where = [&] { return path + ":" + std::to_string(line_no) + ": "; };
    // Split on blanks (space, tab, CR).
    std::vector<std::string_view> tokens;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      const size_t start = i;
      while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
      if (i > start) tokens.push_back(line.substr(start, i - start));
    }
    if (tokens.empty()) continue;

    double label = 0;
    if (!ParseDouble(tokens[0], &label)) {
      return InvalidArgument(where() + "bad label '" + std::string(tokens[0]) +
                             "' (expected a number)");
    }
    std::vector<uint64_t> ex_ids;
    std::vector<float> ex_values;
    for (size_t t = 1; t < tokens.size(); ++t) {
      const std::string_view tok = tokens[t];
      const size_t colon = tok.find(':');
      if (colon == std::string_view::npos) {
        return InvalidArgument(where() + "expected index:value, got '" + std::string(tok) + "'");
      }
      const std::string_view key = tok.substr(0, colon);
      const std::string_view val = tok.substr(colon + 1);
      if (key == "qid") continue;
      uint64_t id = 0;
      if (!ParseU64(key, &id)) {
        return InvalidArgument(where() + "bad feature index '" + std::string(key) +
                               "' (expected a non-negative integer)");
      }
      float v = 0;
      if (!ParseFloat(val, &v)) {
        return InvalidArgument(where() + "bad value '" + std::string(val) + "' for index " +
                               std::to_string(id) + " (expected a finite number)");
      }
      if (v != 1.0f) all_ones = false;
      ex_ids.push_back(id);
      ex_values.push_back(v);
    }
    raw_labels.push_back(label);
    out.ids.push_back(std::move(ex_ids));
    values.push_back(std::move(ex_values));
  }
  if (raw_labels.empty()) return InvalidArgument(path + ": no examples");

  std::map<double, int32_t> label_map;
  for (double l : raw_labels) label_map.emplace(l, 0);
  if (label_map.size() > kMaxLibsvmClasses) {
    return InvalidArgument(path + ": " + std::to_string(label_map.size()) +
                           " distinct labels; a classifier needs class labels, not a regression "
                           "target");
  }
  int32_t next = 0;
  for (auto& [l, c] : label_map) c = next++;
  out.num_classes = label_map.size();
  out.labels.reserve(raw_labels.size());
  for (double l : raw_labels) out.labels.push_back(label_map.at(l));
  if (!all_ones) out.values = std::move(values);
  return out;
}

std::vector<size_t> ShardIndices(size_t num_examples, int rank, int world, uint64_t seed) {
  if (world <= 0 || rank < 0 || rank >= world) return {};
  std::vector<size_t> perm(num_examples);
  std::iota(perm.begin(), perm.end(), size_t{0});
  internal::Shuffle(&perm, seed);
  std::vector<size_t> out;
  out.reserve(num_examples / static_cast<size_t>(world) + 1);
  for (size_t i = static_cast<size_t>(rank); i < num_examples; i += static_cast<size_t>(world)) {
    out.push_back(perm[i]);
  }
  return out;
}

void TruncateDataset(Dataset* data, size_t max_examples) {
  if (max_examples == 0 || max_examples >= data->size()) return;
  data->labels.resize(max_examples);
  if (!data->features.empty()) data->features.resize(max_examples * data->feature_dim);
  if (!data->ids.empty()) data->ids.resize(max_examples);
  if (!data->values.empty()) data->values.resize(max_examples);
}

Dataset SubsetDataset(const Dataset& data, const std::vector<size_t>& idx) {
  Dataset out;
  out.name = data.name;
  out.num_classes = data.num_classes;
  out.feature_dim = data.feature_dim;
  out.labels.reserve(idx.size());
  if (data.dense()) out.features.reserve(idx.size() * data.feature_dim);
  for (size_t i : idx) {
    out.labels.push_back(data.labels[i]);
    if (data.dense()) {
      out.features.insert(out.features.end(), data.row(i), data.row(i) + data.feature_dim);
    }
    if (!data.ids.empty()) out.ids.push_back(data.ids[i]);
    if (!data.values.empty()) out.values.push_back(data.values[i]);
  }
  return out;
}

void KeepShard(Dataset* data, std::vector<size_t>* shard) {
  Dataset kept = SubsetDataset(*data, *shard);
  // Swapping in the copy frees the full set's buffers at once.
  *data = std::move(kept);
  std::iota(shard->begin(), shard->end(), size_t{0});
}

void ReleaseExamples(Dataset* data) {
  // Swapping with empty vectors, unlike clear() or `= {}`, returns the memory.
  auto release = [](auto& v) { std::remove_reference_t<decltype(v)>().swap(v); };
  release(data->labels);
  release(data->features);
  release(data->ids);
  release(data->values);
}

}  // namespace phalanx::worker
