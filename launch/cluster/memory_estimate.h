#pragma once
// What a job will hold in memory, estimated from the config before any node
// starts, so `phalanx launch local` can refuse a job this machine cannot fit
// (64 Fashion-MNIST workers took 15.1 GB) instead of letting it swap or be
// OOM-killed. The figures are lower bounds calibrated on the 2-core machine
// (launch/README.md, "Memory estimate"); `cluster.skip_memory_check = true`
// skips the check. Pure functions except AvailableMemoryBytes.

#include <cstdint>
#include <string>

#include "common/status.h"
#include "launch/config/config.h"

namespace phalanx::launch {

// Whether each worker keeps only its shard of the training set (and the test
// split only where it evaluates, rank 0): true since workers read only their
// shard (worker/README.md). SpamAssassin and libsvm are still read whole and
// cut afterwards, so their transient peak is above this estimate.
inline constexpr bool kWorkersKeepOnlyTheirShard = true;

// The data set as a worker loads it (worker::Dataset): bytes of the training
// and test splits.
struct DatasetBytes {
  int64_t train = 0;
  int64_t test = 0;
};

// From the config alone: Fashion-MNIST's fixed shape (60000 + 10000 images of
// 784 floats and a label each, after data.max_train/max_test), or, for the
// sparse data sets, the size of their files on disk (a worker held ~0.75x
// the SpamAssassin corpus's 69 MB).
DatasetBytes EstimateDatasetBytes(const JobConfig& config);

// The data one worker holds: everything, or its 1/workers share of the
// training set plus the test split when it evaluates.
int64_t WorkerDataBytes(const DatasetBytes& data, int workers, bool keeps_only_shard,
                        bool evaluates);

struct MemoryEstimate {
  int64_t per_worker = 0;  // the largest worker (rank 0 when it evaluates)
  int64_t per_server = 0;
  int64_t total = 0;             // launcher, scheduler, servers and workers
  std::string Describe() const;  // "4 workers x 247 MB + 2 servers x 13 MB + ... = 1.0 GB"
  int workers = 0;
  int servers = 0;
};

MemoryEstimate EstimateJobMemory(const JobConfig& config,
                                 bool keeps_only_shard = kWorkersKeepOnlyTheirShard);

// MemAvailable from /proc/meminfo in bytes; NotFound where it cannot be read.
Result<int64_t> AvailableMemoryBytes(const std::string& meminfo_path = "/proc/meminfo");

// ResourceExhausted naming the estimate and `available_bytes` when the job
// cannot fit, unless cluster.skip_memory_check.
Status CheckJobFits(const JobConfig& config, const MemoryEstimate& estimate,
                    int64_t available_bytes);

}  // namespace phalanx::launch
