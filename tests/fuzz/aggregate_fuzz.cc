// Fuzz target: `phalanx aggregate` cases (launch/cases/aggregate_case.h), JSON
// documents naming a rule, its parameters and the input vectors, run in the
// direct and in the two-phase Gram form. Input: one flag byte (bit 0: Gram
// form), then the JSON text. A refusal must carry a message.

#include <nlohmann/json.hpp>
#include <string>

#include "launch/cases/aggregate_case.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > (1 << 16)) return 0;
  const auto doc =
      nlohmann::json::parse(data + 1, data + size, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;
  phalanx::launch::AggregateCaseOptions o;
  o.gram_form = (data[0] & 1) != 0;
  auto r = phalanx::launch::RunAggregateCaseJson(doc, o);
  if (!r.ok() && r.status().message().empty()) {
    phalanx::fuzz::Violated("a refused case without a message");
  }
  return 0;
}
