#include "ps/table.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ps/internal/optimizer.h"
#include "ps/internal/optimizer_dispatch.h"
#include "ps/internal/partition.h"
#include "ps/internal/row_init.h"

namespace phalanx::ps {

size_t OptimizerStateFloats(const OptimizerOptions& options, size_t dim) {
  switch (options.kind) {
    case OptimizerKind::kSgd:
      return options.momentum != 0.0f ? dim : 0;
    case OptimizerKind::kAdagrad:
      return dim;
    case OptimizerKind::kAdam:
      return 2 * dim + 1;
  }
  return 0;
}

namespace {

using internal::HashKey;
using internal::OptimizerParams;
using internal::Partition;

// How far ahead of its use a key's index slot and then its row are
// prefetched. 16 slot misses plus 8 row misses in flight is about what one
// core's fill buffers hold. Measured on 4M rows: 8/4 is 10-20% slower, 32/16
// no faster.
constexpr size_t kSlotAhead = 16;
constexpr size_t kRowAhead = 8;
static_assert((kRowAhead & (kRowAhead - 1)) == 0, "ring size must be a power of two");
constexpr uint32_t kMaxPartitions = 256;  // partition ids are uint8
#if defined(__AVX2__) && defined(__FMA__)
constexpr bool kBaselineHasAvx2 = true;
#else
constexpr bool kBaselineHasAvx2 = false;
#endif

// The update pipeline of each optimizer-row variant (optimizer_dispatch.h):
// flatten inlines the whole pipeline, the visit and the row kernel into the
// attributed function, so all of it is compiled for that target (GCC and
// clang inline code of the baseline into a function whose target is a
// superset of it). Off x86-64 there is only the scalar variant.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#if defined(__AVX2__) && defined(__FMA__)
// The baseline has AVX2 already (x86-64-v3): no attribute and no flatten,
// StreamImpl stays a flattened function per case (all four flattened into one
// function, SGD updates ran 6-10% slower at 1M rows).
#define PHX_AVX2_PIPELINE
#else
#define PHX_AVX2_PIPELINE __attribute__((flatten, target("avx2,fma")))
#endif
#if defined(__clang__)
#define PHX_AVX512_PIPELINE                                                      \
  __attribute__((flatten, target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq"), \
                 min_vector_width(512)))
#else
// GCC prefers 256-bit vectors even with AVX-512 unless told otherwise; a
// 16-float row is one zmm register.
#define PHX_AVX512_PIPELINE \
  __attribute__((flatten,   \
                 target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq,prefer-vector-width=512")))
#endif
#else
#define PHX_AVX2_PIPELINE [[gnu::flatten]]
#define PHX_AVX512_PIPELINE [[gnu::flatten]]
#endif

// The table behind EmbeddingTable: `num_partitions` share-nothing Partitions
// selected by the low bits of the key hash. Each call streams its keys
// through a software pipeline (prefetch slot -> probe and prefetch row ->
// visit row); large batches are first bucketed by partition (a stable
// counting sort) and the partitions run as parallel TBB tasks. Because each
// partition sees its keys in call order either way, the parallel path gives
// bit-identical results to the serial one, duplicates included.
//
// Thread-safety: as EmbeddingTable (one calling thread). Internally TBB tasks
// touch disjoint partitions and disjoint output rows only.
class PartitionedTable final : public EmbeddingTable {
 public:
  // `kernel`: one of internal::SupportedOptimizerKernels().
  PartitionedTable(const TableOptions& options, std::string_view kernel)
      : EmbeddingTable(options),
        dim_(options.dim),
        state_floats_(OptimizerStateFloats(options.optimizer, options.dim)),
        part_mask_(options.num_partitions - 1) {
    const size_t per_part =
        (options.initial_capacity + options.num_partitions - 1) / options.num_partitions;
    parts_.reserve(options.num_partitions);
    for (uint32_t p = 0; p < options.num_partitions; ++p) {
      parts_.push_back(std::make_unique<Partition>(dim_, state_floats_, per_part));
    }
    const OptimizerOptions& o = options.optimizer;
    params_.lr = o.learning_rate;
    params_.weight_decay = o.weight_decay;
    params_.momentum = o.momentum;
    params_.beta1 = o.beta1;
    params_.beta2 = o.beta2;
    params_.epsilon = o.epsilon;
    params_.log_beta1 = std::log(static_cast<double>(o.beta1));
    params_.log_beta2 = std::log(static_cast<double>(o.beta2));
    if (o.kind == OptimizerKind::kAdam) BuildAdamTable();
    wide_ = parts_[0]->wide();
    apply_ = ChooseApply(kernel);
  }

  void Lookup(std::span<const uint64_t> keys, float* out) override {
    const size_t dim = dim_;
    if (dim == 16) {
      // A constant-size copy compiles to one 64-byte load/store pair instead
      // of a call to memcpy, which matters at ~25 ns per row.
      Run<kPrefetchWeights>(keys, [out](size_t i, float* w, float*) {
        std::memcpy(out + i * 16, w, 16 * sizeof(float));
      });
      return;
    }
    Run<kPrefetchWeights>(keys, [out, dim](size_t i, float* w, float*) {
      std::memcpy(out + i * dim, w, dim * sizeof(float));
    });
  }

  // One indirect call per batch: the variant, optimizer and row width were
  // chosen when the table was made (ChooseApply).
  void Apply(std::span<const uint64_t> keys, const float* grads) override {
    (this->*apply_)(keys, grads);
  }

  void InitialRow(uint64_t key, float* out) const override {
    internal::InitialWeights(options_.seed, options_.table_id, key, static_cast<int>(options_.init),
                             options_.init_scale, dim_, out);
  }

  size_t size() const override {
    size_t n = 0;
    for (const auto& p : parts_) n += p->size();
    return n;
  }

  size_t memory_bytes() const override {
    size_t n = sizeof(*this) + order_.capacity() * sizeof(uint32_t) + part_of_.capacity() +
               adam_table_.capacity() * sizeof(float);
    for (const auto& p : parts_) n += sizeof(Partition) + p->memory_bytes();
    return n;
  }

  bool Contains(uint64_t key) const override {
    const uint64_t h = HashKey(key);
    return parts_[h & part_mask_]->Find(key, h) >= 0;
  }

  void ForEach(
      const std::function<void(uint64_t key, std::span<const float> row)>& fn) const override {
    // Stored rows are [weights | state]; the partition keeps the two apart.
    std::vector<float> row(dim_ + state_floats_);
    const size_t weight_bytes = dim_ * sizeof(float), state_bytes = state_floats_ * sizeof(float);
    for (const auto& p : parts_) {
      p->ForEach([&](uint64_t key, const float* w, const float* state) {
        std::memcpy(row.data(), w, weight_bytes);
        if (state_bytes != 0) std::memcpy(row.data() + dim_, state, state_bytes);
        fn(key, row);
      });
    }
  }

  void Import(std::span<const uint64_t> keys, const float* values) override {
    const size_t n = dim_ + state_floats_, dim = dim_;
    const size_t weight_bytes = dim * sizeof(float), state_bytes = state_floats_ * sizeof(float);
    // Rows are overwritten whole: new ones skip their initial values (about
    // as costly as the copy itself when restoring a snapshot).
    Run<kOverwriteRow>(keys, [=](size_t i, float* w, float* state) {
      std::memcpy(w, values + i * n, weight_bytes);
      if (state_bytes != 0) std::memcpy(state, values + i * n + dim, state_bytes);
    });
  }

 private:
  enum class Opt { kSgd, kMomentum, kAdagrad, kAdam };
  enum class Isa { kScalar, kAvx2, kAvx512 };
  using ApplyFn = void (PartitionedTable::*)(std::span<const uint64_t>, const float*);

  ApplyFn ChooseApply(std::string_view kernel) const {
    const OptimizerOptions& o = options_.optimizer;
    switch (o.kind) {
      case OptimizerKind::kSgd:
        return o.momentum != 0.0f ? ApplyFor<Opt::kMomentum>(kernel) : ApplyFor<Opt::kSgd>(kernel);
      case OptimizerKind::kAdagrad:
        return ApplyFor<Opt::kAdagrad>(kernel);
      case OptimizerKind::kAdam:
        return ApplyFor<Opt::kAdam>(kernel);
    }
    return ApplyFor<Opt::kSgd>(kernel);
  }

  // The common embedding width gets kernels with a fixed trip count, which
  // the compiler unrolls into a few vector operations per row; the scalar
  // variant always runs at the run-time width.
  template <Opt kOpt>
  ApplyFn ApplyFor(std::string_view kernel) const {
    const bool d16 = dim_ == 16;
    if (kernel == "scalar") return &PartitionedTable::ApplyBatch<Isa::kScalar, kOpt, 0>;
    if (kernel == "avx512") {
      return d16 ? &PartitionedTable::ApplyBatch<Isa::kAvx512, kOpt, 16>
                 : &PartitionedTable::ApplyBatch<Isa::kAvx512, kOpt, 0>;
    }
    return d16 ? &PartitionedTable::ApplyBatch<Isa::kAvx2, kOpt, 16>
               : &PartitionedTable::ApplyBatch<Isa::kAvx2, kOpt, 0>;
  }

  template <Isa kIsa, Opt kOpt, size_t kDim>
  void ApplyBatch(std::span<const uint64_t> keys, const float* grads) {
    RunStreams<kPrefetchRow>(keys,
                             [this, grads](const uint64_t* k, const uint32_t* order, size_t n) {
                               if constexpr (kIsa == Isa::kScalar) {
                                 StreamScalar<kOpt>(k, order, n, grads);
                               } else if constexpr (kIsa == Isa::kAvx2) {
                                 StreamAvx2<kOpt, kDim>(k, order, n, grads);
                               } else {
                                 StreamAvx512<kOpt, kDim>(k, order, n, grads);
                               }
                             });
  }

  // Not inlined on a baseline with AVX2: StreamImpl stays the flattened
  // function of its own it always was (inlined, the pipeline ran 6-10% slower).
  template <Opt kOpt, size_t kDim>
  PHX_AVX2_PIPELINE void StreamAvx2(const uint64_t* keys, const uint32_t* order, size_t n,
                                    const float* grads) {
    StreamUpdate<kOpt, kDim, !kBaselineHasAvx2>(keys, order, n, grads);
  }

  template <Opt kOpt, size_t kDim>
  PHX_AVX512_PIPELINE void StreamAvx512(const uint64_t* keys, const uint32_t* order, size_t n,
                                        const float* grads) {
    StreamUpdate<kOpt, kDim, true>(keys, order, n, grads);
  }

  // The pipeline with optimizer.h's kernel inlined into the visit.
  template <Opt kOpt, size_t kDim, bool kInline>
  [[gnu::always_inline]] void StreamUpdate(const uint64_t* keys, const uint32_t* order, size_t n,
                                           const float* grads) {
    const OptimizerParams p = params_;
    const size_t dim = dim_;
    Stream<kPrefetchRow, kInline>(keys, order, n,
                                  [&p, grads, dim](size_t i, float* w, float* state) {
                                    const float* g = grads + i * dim;
                                    if constexpr (kOpt == Opt::kSgd) {
                                      internal::SgdStep<kDim>(p, dim, g, w, state);
                                    } else if constexpr (kOpt == Opt::kMomentum) {
                                      internal::MomentumStep<kDim>(p, dim, g, w, state);
                                    } else if constexpr (kOpt == Opt::kAdagrad) {
                                      internal::AdagradStep<kDim>(p, dim, g, w, state);
                                    } else {
                                      internal::AdamStep<kDim>(p, dim, g, w, state);
                                    }
                                  });
  }

  // The same pipeline calling the scalar rows of optimizer_scalar.cc (a
  // direct call per row: the reference, not the fast path).
  template <Opt kOpt>
  void StreamScalar(const uint64_t* keys, const uint32_t* order, size_t n, const float* grads) {
    const OptimizerParams p = params_;
    const size_t dim = dim_;
    Stream<kPrefetchRow>(keys, order, n, [&p, grads, dim](size_t i, float* w, float* state) {
      const float* g = grads + i * dim;
      if constexpr (kOpt == Opt::kSgd) {
        internal::ScalarSgdRow(p, dim, g, w, state);
      } else if constexpr (kOpt == Opt::kMomentum) {
        internal::ScalarMomentumRow(p, dim, g, w, state);
      } else if constexpr (kOpt == Opt::kAdagrad) {
        internal::ScalarAdagradRow(p, dim, g, w, state);
      } else {
        internal::ScalarAdamRow(p, dim, g, w, state);
      }
    });
  }

  // Adam's bias corrections per step, up to the step where both are exactly
  // their limits in float (about 1.7e4 steps for beta2 = 0.999), at most
  // kMaxAdamTable steps; later steps compute them.
  void BuildAdamTable() {
    constexpr uint32_t kMaxAdamTable = 1u << 16;
    float step = 0, inv = 0;
    uint32_t size = 1;
    while (size < kMaxAdamTable) {
      internal::AdamFactors(params_, size, &step, &inv);
      if (step == params_.lr && inv == 1.0f) break;
      ++size;
    }
    adam_table_.resize(2 * size_t{size});
    internal::AdamBiasTable(params_, size, adam_table_.data());
    params_.adam_table = adam_table_.data();
    params_.adam_table_size = size;
  }

  // Writes a new row: its initial weights and the optimizer's initial state.
  void InitRow(uint64_t key, float* w, float* state) const {
    InitialRow(key, w);
    if (state_floats_ == 0) return;
    std::memset(state, 0, state_floats_ * sizeof(float));  // moments, velocity, step 0
    if (options_.optimizer.kind == OptimizerKind::kAdagrad) {
      std::fill(state, state + dim_, options_.optimizer.initial_accumulator);
    }
  }

  // What the pipeline prefetches of a resolved row: the whole row for
  // writing (Apply, Import: weights and state), or only its weights for
  // reading (Lookup: with Adam, 1 line of 64 B where the row and its state
  // span 4-5).
  // kOverwriteRow: as kPrefetchRow, and a row created by the call is left
  // uninitialised because the visit writes all of it (Import).
  enum PrefetchKind { kPrefetchRow, kPrefetchWeights, kOverwriteRow };

  template <PrefetchKind kKind, bool kWide>
  [[gnu::always_inline]] static void PrefetchResolved(const Partition* part, uint32_t row) {
    if constexpr (kWide) {
      if constexpr (kKind == kPrefetchWeights) {
        part->PrefetchHead<0, false>(row);
      } else {
        part->PrefetchHead<1, true>(row);
      }
    } else if constexpr (kKind == kPrefetchRow || kKind == kOverwriteRow) {
      part->PrefetchRow(row);
    } else {
      part->PrefetchWeights(row);
    }
  }

  // Resolves the row of every key and calls visit(i, weights, state) for key
  // i, in key order within each partition. Updates and imports create missing
  // rows; a lookup (kPrefetchWeights) visits a missing key's initial row
  // (state null) without creating it.
  template <PrefetchKind kKind = kPrefetchRow, typename Visit>
  void Run(std::span<const uint64_t> keys, const Visit& visit) {
    RunStreams<kKind>(keys, [this, &visit](const uint64_t* k, const uint32_t* order, size_t n) {
      Stream<kKind>(k, order, n, visit);
    });
  }

  // Run with the pipeline given as stream(keys, order, n): the keys of one
  // partition (order non-null) or all of them, on the caller's thread.
  template <PrefetchKind kKind, typename StreamFn>
  void RunStreams(std::span<const uint64_t> keys, const StreamFn& stream) {
    const size_t n = keys.size();
    const size_t min_batch =
        kKind == kPrefetchWeights ? options_.parallel_min_lookup : options_.parallel_min_update;
    if (n < min_batch || parts_.size() == 1 || n > UINT32_MAX) {
      stream(keys.data(), nullptr, n);
      return;
    }
    // Bucket the key positions by partition, keeping call order within each
    // partition, into buffers reused across calls.
    const size_t num_parts = parts_.size();
    part_of_.resize(n);
    order_.resize(n);
    std::array<size_t, kMaxPartitions + 1> start{};
    for (size_t i = 0; i < n; ++i) {
      const auto p = static_cast<uint8_t>(HashKey(keys[i]) & part_mask_);
      part_of_[i] = p;
      ++start[p + 1];
    }
    for (size_t p = 0; p < num_parts; ++p) start[p + 1] += start[p];
    std::array<size_t, kMaxPartitions> next;
    std::copy(start.begin(), start.begin() + num_parts, next.begin());
    for (size_t i = 0; i < n; ++i) order_[next[part_of_[i]]++] = static_cast<uint32_t>(i);

    tbb::parallel_for(tbb::blocked_range<size_t>(0, num_parts, 1),
                      [&](const tbb::blocked_range<size_t>& r) {
                        for (size_t p = r.begin(); p != r.end(); ++p) {
                          stream(keys.data(), order_.data() + start[p], start[p + 1] - start[p]);
                        }
                      });
  }

  // The software pipeline over n keys, keys[order[j]] (or keys[j] when order
  // is null). Step j prefetches the home bucket of key j + kSlotAhead, probes
  // key j (its bucket is in cache by now) and prefetches its row, and visits key
  // j - kRowAhead (its row is in cache by now). Rows are carried as ids, not
  // pointers, because an insertion may move the slab. Wide rows get their own
  // instantiation, so the prefetch of narrow ones stays branch-free.
  // kInline: the whole pipeline is inlined into the caller (a variant with
  // a target attribute: left out of line, StreamImpl would be compiled for
  // the baseline); otherwise StreamImpl is a flattened function of its own.
  template <PrefetchKind kKind, bool kInline = false, typename Visit>
  [[gnu::always_inline]] void Stream(const uint64_t* keys, const uint32_t* order, size_t n,
                                     const Visit& visit) {
    if (wide_) {
      StreamOrdered<kKind, true, kInline>(keys, order, n, visit);
    } else {
      StreamOrdered<kKind, false, kInline>(keys, order, n, visit);
    }
  }

  template <PrefetchKind kKind, bool kWide, bool kInline, typename Visit>
  [[gnu::always_inline]] void StreamOrdered(const uint64_t* keys, const uint32_t* order, size_t n,
                                            const Visit& visit) {
    auto all = [](size_t j) { return j; };
    auto some = [order](size_t j) -> size_t { return order[j]; };
    if constexpr (kInline) {
      if (order == nullptr) {
        StreamBody<kKind, kWide>(keys, all, n, visit);
      } else {
        StreamBody<kKind, kWide>(keys, some, n, visit);
      }
    } else {
      if (order == nullptr) {
        StreamImpl<kKind, kWide>(keys, all, n, visit);
      } else {
        StreamImpl<kKind, kWide>(keys, some, n, visit);
      }
    }
  }

  template <PrefetchKind kKind, bool kWide, typename IndexAt, typename Visit>
  [[gnu::flatten]] void StreamImpl(const uint64_t* keys, const IndexAt& index_at, size_t n,
                                   const Visit& visit) {
    StreamBody<kKind, kWide>(keys, index_at, n, visit);
  }

  template <PrefetchKind kKind, bool kWide, typename IndexAt, typename Visit>
  [[gnu::always_inline]] void StreamBody(const uint64_t* keys, const IndexAt& index_at, size_t n,
                                         const Visit& visit) {
    auto init = [this]([[maybe_unused]] uint64_t key, [[maybe_unused]] float* w,
                       [[maybe_unused]] float* state) {
      if constexpr (kKind != kOverwriteRow) {
        InitRow(key, w, state);
      } else {
        (void)this;  // Import overwrites whole rows: nothing to initialise
      }
    };
    struct Resolved {
      Partition* part;
      uint32_t row;
      size_t index;
    };
    Resolved ring[kRowAhead] = {};
    // Lookups only read: a missing key is not inserted (kAbsent in the ring)
    // and is visited with its initial row, built here.
    constexpr bool kReadOnly = kKind == kPrefetchWeights;
    constexpr uint32_t kAbsent = UINT32_MAX;
    std::vector<float> absent_row;
    // Hashes computed at prefetch time, kept until the probe.
    uint64_t hashes[kSlotAhead] = {};

    auto prefetch = [&](size_t j) {
      const uint64_t h = HashKey(keys[index_at(j)]);
      hashes[j % kSlotAhead] = h;
      parts_[h & part_mask_]->PrefetchBucket(h);
    };
    for (size_t j = 0; j < std::min(n, kSlotAhead); ++j) prefetch(j);
    for (size_t j = 0; j < n + kRowAhead; ++j) {
      // Visit before resolving: key j reuses the ring entry of key j - kRowAhead.
      if (j >= kRowAhead) {
        const Resolved& r = ring[j % kRowAhead];
        if (kReadOnly && r.row == kAbsent) {
          // A key without a row reads as its initial row: pulls of keys that
          // were never pushed must not grow the table (rows come from updates).
          if (absent_row.empty()) absent_row.resize(dim_);
          InitialRow(keys[r.index], absent_row.data());
          visit(r.index, absent_row.data(), nullptr);
        } else {
          visit(r.index, r.part->Row(r.row), r.part->State(r.row));
        }
      }
      if (j < n) {
        const size_t i = index_at(j);
        const uint64_t h = hashes[j % kSlotAhead];
        if (j + kSlotAhead < n) prefetch(j + kSlotAhead);
        Partition* part = parts_[h & part_mask_].get();
        uint32_t row;
        if constexpr (kReadOnly) {
          const int64_t found = part->Find(keys[i], h);
          row = found < 0 ? kAbsent : static_cast<uint32_t>(found);
          if (found >= 0) PrefetchResolved<kKind, kWide>(part, row);
        } else {
          row = part->FindOrInsert(keys[i], h, init);
          PrefetchResolved<kKind, kWide>(part, row);
        }
        ring[j % kRowAhead] = {part, row, i};
      }
    }
  }

  const size_t dim_;
  const size_t state_floats_;
  const uint64_t part_mask_;
  bool wide_ = false;        // rows (or their state) wider than Partition::kWideRowBytes
  ApplyFn apply_ = nullptr;  // the batch update of this table's variant, optimizer, width
  OptimizerParams params_;
  std::vector<float> adam_table_;  // params_.adam_table points here
  std::vector<std::unique_ptr<Partition>> parts_;
  // Scratch of the parallel path, kept across calls: a fresh multi-MB buffer
  // per call would cost more in page faults than the bucketing itself.
  std::vector<uint8_t> part_of_;
  std::vector<uint32_t> order_;
};

bool IsFinite(float x) { return std::isfinite(x); }

Status Validate(const TableOptions& o) {
  if (o.dim == 0 || o.dim > (1u << 20)) {
    return InvalidArgument("table dim must be in [1, 2^20], got " + std::to_string(o.dim));
  }
  const uint32_t np = o.num_partitions;
  if (np == 0 || np > kMaxPartitions || (np & (np - 1)) != 0) {
    return InvalidArgument("num_partitions must be a power of two in [1, 256], got " +
                           std::to_string(np));
  }
  if (!IsFinite(o.init_scale) || o.init_scale < 0) {
    return InvalidArgument("init_scale must be finite and >= 0");
  }
  const OptimizerOptions& p = o.optimizer;
  if (!IsFinite(p.learning_rate) || p.learning_rate < 0) {
    return InvalidArgument("learning_rate must be finite and >= 0");
  }
  if (!IsFinite(p.weight_decay) || p.weight_decay < 0) {
    return InvalidArgument("weight_decay must be finite and >= 0");
  }
  if (!IsFinite(p.momentum) || p.momentum < 0 || p.momentum > 1) {
    return InvalidArgument("momentum must be in [0, 1]");
  }
  if (p.kind == OptimizerKind::kAdam &&
      !(p.beta1 >= 0 && p.beta1 < 1 && p.beta2 >= 0 && p.beta2 < 1)) {
    return InvalidArgument("Adam betas must be in [0, 1)");
  }
  if ((p.kind == OptimizerKind::kAdam || p.kind == OptimizerKind::kAdagrad) &&
      !(IsFinite(p.epsilon) && p.epsilon > 0)) {
    return InvalidArgument("epsilon must be finite and > 0");
  }
  if (p.kind == OptimizerKind::kAdagrad &&
      !(IsFinite(p.initial_accumulator) && p.initial_accumulator >= 0)) {
    return InvalidArgument("initial_accumulator must be finite and >= 0");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<EmbeddingTable>> EmbeddingTable::Create(const TableOptions& options) {
  const Result<std::string_view>& kernel = internal::ActiveOptimizerKernel();
  if (!kernel.ok()) return kernel.status();
  return internal::CreateTableWithKernel(options, *kernel);
}

namespace internal {

Result<std::unique_ptr<EmbeddingTable>> CreateTableWithKernel(const TableOptions& options,
                                                              std::string_view variant) {
  PHX_RETURN_IF_ERROR(Validate(options));
  for (std::string_view v : SupportedOptimizerKernels()) {
    if (v == variant) {
      return std::unique_ptr<EmbeddingTable>(std::make_unique<PartitionedTable>(options, v));
    }
  }
  return InvalidArgument("optimizer kernel " + std::string(variant) +
                         " is not one this CPU and build run");
}

}  // namespace internal

}  // namespace phalanx::ps
