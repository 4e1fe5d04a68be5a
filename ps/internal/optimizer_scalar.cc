// The scalar optimizer rows: optimizer.h's kernels compiled with
// -fno-tree-vectorize -fno-tree-slp-vectorize (ps/CMakeLists.txt), at the
// run-time width. Instantiated with a tag of this file's own (see the `Tag`
// note in optimizer.h), so no copy made here is shared with the table.
#include "ps/internal/optimizer.h"
#include "ps/internal/optimizer_dispatch.h"

namespace phalanx::ps::internal {
namespace {
struct ScalarTag {};
}  // namespace

void ScalarSgdRow(const OptimizerParams& p, size_t dim, const float* g, float* w, float* state) {
  SgdStep<0, ScalarTag>(p, dim, g, w, state);
}

void ScalarMomentumRow(const OptimizerParams& p, size_t dim, const float* g, float* w,
                       float* state) {
  MomentumStep<0, ScalarTag>(p, dim, g, w, state);
}

void ScalarAdagradRow(const OptimizerParams& p, size_t dim, const float* g, float* w,
                      float* state) {
  AdagradStep<0, ScalarTag>(p, dim, g, w, state);
}

void ScalarAdamRow(const OptimizerParams& p, size_t dim, const float* g, float* w, float* state) {
  AdamStep<0, ScalarTag>(p, dim, g, w, state);
}

}  // namespace phalanx::ps::internal
