// Fuzz target: the cereal bodies of control messages (registration, cluster
// view, barriers) and of the shards' round coordination (Gram partials, round
// plans). Input: one selector byte, then the body. A body that decodes must
// re-encode to bytes that decode and re-encode to the same bytes (the decoders
// accept nothing the encoders cannot write back). A decoded plan is applied
// to a shard's slice (selector 5), and selector 6 runs the coordinator's
// combination of up to three partials (chunks, fuzz_util.h) under a robust
// rule chosen by the next byte, then applies the plan.

#include <memory>
#include <string>
#include <vector>

#include "aggregators/aggregator.h"
#include "aggregators/gram.h"
#include "common/control.h"
#include "ps/internal/coordination.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using phalanx::fuzz::Violated;

template <typename Decode, typename Encode>
void RoundTrip(const std::string& bytes, Decode decode, Encode encode) {
  auto first = decode(bytes);
  if (!first.ok()) {
    if (first.status().message().empty()) Violated("a refused body without a message");
    return;
  }
  const std::string once = encode(first.value());
  auto second = decode(once);
  if (!second.ok()) Violated("a re-encoded body does not decode");
  if (encode(second.value()) != once) Violated("encode(decode(encode(x))) != encode(x)");
}

// Applies a plan to small made-up slices, as a shard does with the
// coordinator's plan: refused or applied, never out of bounds.
void ApplyToSlice(const phalanx::ps::internal::RoundPlan& p) {
  if (!p.error.empty() || p.local) return;
  const auto n = static_cast<Eigen::Index>(p.workers.size());
  const Eigen::Index k = std::max<Eigen::Index>(0, p.plan.mixing.rows() - n);
  const Eigen::MatrixXd g = Eigen::MatrixXd::Ones(3, n);
  const Eigen::MatrixXd e = Eigen::MatrixXd::Ones(3, k);
  auto out = phalanx::aggregators::ApplyGramPlan(p.plan, g, e);
  if (out.ok() && out->size() != 3) Violated("a plan applied to 3 rows gave another size");
}

// The coordinator's phase 2: combines up to three shards' partials with a
// robust rule (whose Gram-form plan must cope with whatever a peer sent).
void Combine(phalanx::fuzz::ChunkReader& in) {
  static const char* kRules[] = {"krum",   "multi-krum", "flag",  "geometric-median",  "mda",
                                 "bulyan", "nna",        "monna", "centered-clipping", "nnm+krum",
                                 "mean",   "median"};
  const char* name = kRules[in.Byte() % std::size(kRules)];
  auto rule = phalanx::aggregators::CreateAggregator({name, 1, {}, 1});
  if (!rule.ok()) Violated("a listed rule cannot be created");
  std::vector<phalanx::ps::internal::GramPartial> partials;
  while (!in.empty() && partials.size() < 3) {
    auto p = phalanx::ps::internal::DecodePartial(in.Chunk());
    if (p.ok()) partials.push_back(std::move(p).value());
  }
  const auto plan = phalanx::ps::internal::CombinePartials(**rule, partials);
  ApplyToSlice(plan);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  namespace px = phalanx;
  namespace pi = phalanx::ps::internal;
  switch (data[0] % 7) {
    case 0:
      RoundTrip(body, px::DecodeRegister, px::EncodeRegister);
      break;
    case 1:
      RoundTrip(body, px::DecodeRegisterAck, px::EncodeRegisterAck);
      break;
    case 2:
      RoundTrip(body, px::DecodeClusterView, px::EncodeClusterView);
      break;
    case 3:
      RoundTrip(body, px::DecodeBarrier, px::EncodeBarrier);
      break;
    case 4:
      RoundTrip(body, pi::DecodePartial, pi::EncodePartial);
      break;
    case 5: {
      RoundTrip(body, pi::DecodePlan, pi::EncodePlan);
      auto plan = pi::DecodePlan(body);
      if (plan.ok()) ApplyToSlice(plan.value());
      break;
    }
    case 6: {
      phalanx::fuzz::ChunkReader in(data + 1, size - 1);
      Combine(in);
      break;
    }
  }
  return 0;
}
