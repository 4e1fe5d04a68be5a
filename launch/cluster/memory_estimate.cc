#include "launch/cluster/memory_estimate.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ps/table.h"
#include "worker/model.h"

namespace phalanx::launch {
namespace {

namespace fs = std::filesystem;

// Measured on the 2-core machine (RSS): a server with the softmax job's tiny
// tables 11.4 MB, the scheduler 9.8 MB, the launcher 8.3 MB; a Fashion-MNIST
// worker 247.3 MB, of which 219.8 MB is the data set, the rest libraries,
// model, batches and buffers.
constexpr int64_t kProcessBytes = int64_t{12} << 20;
constexpr int64_t kWorkerBaseBytes = int64_t{26} << 20;

// Fashion-MNIST as worker::LoadFashionMnist holds it: 784 floats and an int32
// label per image.
constexpr int64_t kFmnistTrain = 60000;
constexpr int64_t kFmnistTest = 10000;
constexpr int64_t kFmnistFeatures = 784;
constexpr int64_t kFmnistExampleBytes = kFmnistFeatures * 4 + 4;

// Embedding tables start at RunServer's initial capacity for embedding-bag
// models (launch/cli/roles.cc) and grow with the keys pushed.
constexpr int64_t kEmbeddingRows = int64_t{1} << 18;

int64_t DiskBytes(const std::string& path) {
  std::error_code ec;
  if (path.empty()) return 0;
  if (fs::is_regular_file(path, ec)) return static_cast<int64_t>(fs::file_size(path, ec));
  int64_t sum = 0;
  for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) sum += static_cast<int64_t>(it->file_size(ec));
  }
  return sum;
}

int64_t Capped(int64_t n, int64_t max) { return max > 0 ? std::min(n, max) : n; }

std::string Bytes(int64_t b) {
  char buf[32];
  if (b >= 1000LL * 1000 * 1000) {
    std::snprintf(buf, sizeof(buf), "%.1f GB", static_cast<double>(b) / 1e9);
  } else {
    std::snprintf(buf, sizeof(buf), "%.0f MB", static_cast<double>(b) / 1e6);
  }
  return buf;
}

// Floats of optimizer state per row, as the servers' tables keep them.
int64_t StateFloats(const OptimizerConfig& o, int64_t dim) {
  ps::OptimizerOptions p;
  p.kind = o.kind == "adam"      ? ps::OptimizerKind::kAdam
           : o.kind == "adagrad" ? ps::OptimizerKind::kAdagrad
                                 : ps::OptimizerKind::kSgd;
  p.momentum = static_cast<float>(o.momentum);
  return static_cast<int64_t>(ps::OptimizerStateFloats(p, static_cast<size_t>(dim)));
}

// The dense parameters of the configured model (the feature count is known
// for Fashion-MNIST only; 0 elsewhere, which only lowers the estimate).
int64_t DenseParameters(const JobConfig& c) {
  worker::ModelOptions m;
  m.kind = c.model.kind;
  m.input_dim = c.data.dataset == "fashion-mnist" ? kFmnistFeatures : 0;
  m.num_classes = c.data.dataset == "fashion-mnist" ? 10 : 2;
  m.hidden = static_cast<size_t>(c.model.hidden);
  m.embedding_dim = static_cast<size_t>(c.model.embedding_dim);
  auto model = worker::CreateModel(m);
  return model.ok() ? static_cast<int64_t>((*model)->dense_size()) : 0;
}

// One server's share of a table: its rows, each dim floats of weights plus the
// optimizer's state, plus (synchronous mode) one push per worker held for the
// round's aggregate.
int64_t TableBytes(int64_t rows, int64_t dim, const OptimizerConfig& o, const JobConfig& c) {
  const int64_t per_server = (rows + c.cluster.servers - 1) / c.cluster.servers;
  const int64_t held = c.cluster.mode == "sync" ? c.cluster.workers : 0;
  return per_server * (dim + StateFloats(o, dim) + held * dim) * 4;
}

}  // namespace

DatasetBytes EstimateDatasetBytes(const JobConfig& c) {
  DatasetBytes d;
  if (c.data.dataset == "fashion-mnist") {
    d.train = Capped(kFmnistTrain, c.data.max_train) * kFmnistExampleBytes;
    d.test = Capped(kFmnistTest, c.data.max_test) * kFmnistExampleBytes;
  } else if (c.data.dataset == "spam-assassin") {
    const int64_t held = DiskBytes(c.data.path) * 3 / 4;
    d.test = static_cast<int64_t>(static_cast<double>(held) * c.data.test_fraction);
    d.train = held - d.test;
  } else {
    d.train = DiskBytes(c.data.path) * 3 / 4;
    d.test = DiskBytes(c.data.test_path) * 3 / 4;
  }
  return d;
}

int64_t WorkerDataBytes(const DatasetBytes& data, int workers, bool keeps_only_shard,
                        bool evaluates) {
  if (!keeps_only_shard) return data.train + data.test;
  const int64_t w = std::max(1, workers);
  return (data.train + w - 1) / w + (evaluates ? data.test : 0);
}

MemoryEstimate EstimateJobMemory(const JobConfig& c, bool keeps_only_shard) {
  MemoryEstimate e;
  e.workers = c.cluster.workers;
  e.servers = c.cluster.servers;
  const DatasetBytes data = EstimateDatasetBytes(c);
  e.per_worker = kWorkerBaseBytes + WorkerDataBytes(data, e.workers, keeps_only_shard, true);
  const int64_t other_worker =
      kWorkerBaseBytes + WorkerDataBytes(data, e.workers, keeps_only_shard, false);
  const int64_t row_dim = c.tables.dense_row_dim;
  const int64_t dense_rows = (DenseParameters(c) + row_dim - 1) / row_dim;
  e.per_server = kProcessBytes + TableBytes(dense_rows, row_dim, c.optimizer, c);
  if (c.model.kind == "embedding-bag") {
    e.per_server += TableBytes(kEmbeddingRows, c.model.embedding_dim, c.embedding_optimizer, c);
  }
  e.total =
      2 * kProcessBytes + e.per_worker + (e.workers - 1) * other_worker + e.servers * e.per_server;
  return e;
}

std::string MemoryEstimate::Describe() const {
  return std::to_string(workers) + " workers x " + Bytes(per_worker) + " + " +
         std::to_string(servers) + " servers x " + Bytes(per_server) +
         " + scheduler and launcher = " + Bytes(total);
}

Result<int64_t> AvailableMemoryBytes(const std::string& meminfo_path) {
  std::ifstream in(meminfo_path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key;
    int64_t kb = 0;
    if (ls >> key >> kb && key == "MemAvailable:") return kb * 1024;
  }
  return NotFound("no MemAvailable in " + meminfo_path);
}

Status CheckJobFits(const JobConfig& c, const MemoryEstimate& e, int64_t available_bytes) {
  if (c.cluster.skip_memory_check || e.total <= available_bytes) return Status::Ok();
  return ResourceExhausted("the job needs about " + e.Describe() + " of memory, and this machine " +
                           "has " + Bytes(available_bytes) +
                           " available (MemAvailable in /proc/meminfo); use fewer workers or a "
                           "smaller data set (data.max_train), or set "
                           "cluster.skip_memory_check = true if you know better");
}

}  // namespace phalanx::launch
