#include <string>
#include <string_view>

#include "aggregators/internal/gram_dispatch.h"
#include "common/cpu.h"

namespace phalanx::aggregators::internal {
namespace {

// The reference: one double accumulator per column pair, summed in row
// order, in a 3 x 4 tile (12 accumulators + 4 loaded values fill the 16
// registers of x86-64 and leave the compiler no reason to spill).
constexpr std::ptrdiff_t kTi = 3;
constexpr std::ptrdiff_t kTj = 4;

void ScalarTile(const double* a, const double* b, std::ptrdiff_t len, double (&s)[kTi][kTj]) {
  for (std::ptrdiff_t x = 0; x < kTi; ++x) {
    for (std::ptrdiff_t y = 0; y < kTj; ++y) s[x][y] = 0.0;
  }
  for (std::ptrdiff_t r = 0; r < len; ++r) {
    double bv[kTj];
    for (std::ptrdiff_t y = 0; y < kTj; ++y) bv[y] = b[y * kGramBlockRows + r];
    for (std::ptrdiff_t x = 0; x < kTi; ++x) {
      const double av = a[x * kGramBlockRows + r];
      for (std::ptrdiff_t y = 0; y < kTj; ++y) s[x][y] += av * bv[y];
    }
  }
}

void ScalarBlock(const double* block, std::ptrdiff_t len, std::ptrdiff_t m, double* acc,
                 std::ptrdiff_t ld) {
  for (std::ptrdiff_t i0 = 0; i0 < m; i0 += kTi) {
    // Tiles that reach the lower triangle: j0 <= i0 + kTi - 1.
    for (std::ptrdiff_t j0 = 0; j0 < i0 + kTi && j0 < m; j0 += kTj) {
      double s[kTi][kTj];
      ScalarTile(block + i0 * kGramBlockRows, block + j0 * kGramBlockRows, len, s);
      for (std::ptrdiff_t x = 0; x < kTi; ++x) {
        for (std::ptrdiff_t y = 0; y < kTj; ++y) {
          const std::ptrdiff_t i = i0 + x, j = j0 + y;
          if (j <= i && i < m) acc[i + j * ld] += s[x][y];
        }
      }
    }
  }
}

const GramKernel kScalar{"scalar", 1, kTi, kTj, &ScalarBlock};

std::string Names(const std::vector<const GramKernel*>& kernels) {
  std::string out;
  for (const GramKernel* k : kernels) {
    if (!out.empty()) out += ", ";
    out += k->name;
  }
  return out;
}

}  // namespace

const GramKernel& ScalarGramKernel() { return kScalar; }

std::vector<const GramKernel*> SupportedGramKernels() {
  std::vector<const GramKernel*> out;
  for (const GramKernel* k : {&kScalar, Avx2GramKernel(), Avx512GramKernel()}) {
    if (k != nullptr && CpuRunsKernel(k->name)) out.push_back(k);
  }
  return out;
}

Result<const GramKernel*> ChooseGramKernel(std::string_view override_name) {
  const std::vector<const GramKernel*> supported = SupportedGramKernels();
  if (override_name.empty()) return supported.back();
  for (const GramKernel* k : supported) {
    if (k->name == override_name) return k;
  }
  const bool known = IsKernelVariant(override_name);
  return InvalidArgument(
      "PHX_KERNEL=" + std::string(override_name) +
      (known ? ": this CPU or build cannot run that Gram kernel" : ": unknown Gram kernel") +
      "; this one can run: " + Names(supported));
}

const Result<const GramKernel*>& ActiveGramKernel() {
  static const Result<const GramKernel*> kActive = ChooseGramKernel(KernelOverride());
  return kActive;
}

}  // namespace phalanx::aggregators::internal
