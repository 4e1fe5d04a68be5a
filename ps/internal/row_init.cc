#include "ps/internal/row_init.h"

#include <xxhash.h>

#include <cmath>
#include <cstring>

namespace phalanx::ps::internal {

uint64_t RowStreamBase(uint64_t seed, uint32_t table_id, uint64_t key) {
  uint64_t words[2] = {key, table_id};
  unsigned char bytes[16];
  // Little-endian on every platform we build for; spelled out so the stream
  // does not depend on the host's byte order.
  for (int w = 0; w < 2; ++w) {
    for (int b = 0; b < 8; ++b) bytes[w * 8 + b] = static_cast<unsigned char>(words[w] >> (8 * b));
  }
  return XXH64(bytes, sizeof(bytes), seed);
}

void InitialWeights(uint64_t seed, uint32_t table_id, uint64_t key, int kind, float scale,
                    size_t dim, float* out) {
  if (kind == 0) {
    std::memset(out, 0, dim * sizeof(float));
    return;
  }
  const uint64_t base = RowStreamBase(seed, table_id, key);
  for (size_t c = 0; c < dim; ++c) {
    const uint64_t x = SplitMix64(base + c * 0x9E3779B97F4A7C15ULL);
    if (kind == 1) {
      const float u = static_cast<float>(x >> 40) * 0x1.0p-24f;
      out[c] = scale * (2.0f * u - 1.0f);
    } else {
      const double u1 = (static_cast<double>(x >> 32) + 0.5) * 0x1.0p-32;
      const double u2 = static_cast<double>(x & 0xFFFFFFFFULL) * 0x1.0p-32;
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
      out[c] = static_cast<float>(scale * z);
    }
  }
}

}  // namespace phalanx::ps::internal
