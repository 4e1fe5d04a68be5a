// Fuzz target: the TOML front ends users write by hand: job configs
// (ParseConfig, with `--set` overrides), simulation configs (ParseSimConfig)
// and experiment grids (LoadExperiment). Input: chunks (fuzz_util.h): a
// selector byte, the TOML text, then up to four overrides. A refusal must
// carry a message; nothing may throw past the parser or crash.

#include <string>
#include <vector>

#include "launch/config/config.h"
#include "launch/experiment/experiment.h"
#include "launch/sim/sim_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using phalanx::fuzz::Violated;
  if (size > (1 << 16)) return 0;
  phalanx::fuzz::ChunkReader in(data, size);
  const uint8_t which = in.Byte() % 3;
  const std::string text = in.Chunk();
  std::vector<std::string> overrides;
  while (!in.empty() && overrides.size() < 4) overrides.push_back(in.Chunk());
  phalanx::Status status;
  switch (which) {
    case 0:
      status = phalanx::ParseConfig(text, overrides).status();
      break;
    case 1:
      status = phalanx::launch::ParseSimConfig(text, overrides).status();
      break;
    case 2: {
      phalanx::fuzz::TempFile f(text, ".toml");
      status = phalanx::launch::LoadExperiment(f.path(), overrides).status();
      break;
    }
  }
  if (!status.ok() && status.message().empty()) Violated("a refused config without a message");
  return 0;
}
