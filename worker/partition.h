#pragma once
// Non-IID splits of a training set over federated clients (docs/federated.md,
// "Clients"). Three methods:
//  - dirichlet-equal: Fraboni et al.'s variant. Client c draws label
//    proportions q_c ~ Dir(α·1_C) and then `samples_per_client` examples, each
//    of a class drawn from q_c and uniformly (with replacement) from that
//    class's pool. Every client has the same size. Nothing is stored per
//    client: the indices are a pure function of (seed, c), regenerated on
//    demand, so 10^5 registered clients cost no memory here.
//  - dirichlet: the usual split without replacement. For each class k, client
//    shares ~ Dir(α·1_M) cut the class's shuffled examples; stored as one
//    index array (4 bytes per example). A client left empty is an error.
//  - iid: like dirichlet-equal with uniform draws over all examples.
// Works for any class count (Fashion-MNIST: 10; SpamAssassin: its 2 classes).
// Immutable after Create; any thread may call ClientIndices concurrently.

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/dataset.h"

namespace phalanx::worker {

struct PartitionOptions {
  std::string method = "dirichlet-equal";  // dirichlet-equal | dirichlet | iid
  double alpha = 0.1;                      // Dirichlet concentration, > 0
  int64_t num_clients = 20;
  int64_t samples_per_client = 0;  // dirichlet-equal, iid: 0 = floor(N / num_clients)
  uint64_t seed = 42;
};

class Partition {
 public:
  // InvalidArgument for α ≤ 0, an unknown method, no clients, or a client
  // that would be empty (naming it and how to fix the config).
  static Result<Partition> Create(const Dataset& train, const PartitionOptions& options);

  int64_t num_clients() const { return options_.num_clients; }
  int64_t ClientSize(int64_t client) const;
  // The example indices of `client` (into the training set), deterministic.
  void ClientIndices(int64_t client, std::vector<uint32_t>* out) const;
  // Client c's label proportions q_c (dirichlet-equal, iid); empirical for dirichlet.
  std::vector<double> LabelProportions(int64_t client) const;
  // Bytes held by the partition (pools or the index array).
  size_t MemoryBytes() const;

 private:
  PartitionOptions options_;
  size_t num_classes_ = 0;
  int32_t num_examples_ = 0;
  std::vector<std::vector<uint32_t>> pools_;  // per class (dirichlet-equal)
  std::vector<uint32_t> offsets_;             // dirichlet: client c = [offsets_[c], offsets_[c+1])
  std::vector<uint32_t> indices_;
};

// Deterministic Dirichlet(α·1_k) draw from `seed` (Marsaglia–Tsang gamma in
// log space, so α ≪ 1 never underflows to all zeros).
std::vector<double> SampleDirichlet(double alpha, size_t k, uint64_t seed);

}  // namespace phalanx::worker
