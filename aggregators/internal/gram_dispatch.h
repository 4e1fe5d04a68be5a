#pragma once
// Which Gram kernel variant (gram_kernel.h) runs: the widest this CPU
// supports, or the one PHX_KERNEL names, chosen once per process.
//
// The CPU detection and PHX_KERNEL are common/cpu.h's, shared with the
// optimizer rows (ps/internal/optimizer_dispatch.h).
//
// Thread-safety: the choice is a function-local static, made once and then
// only read.

#include <Eigen/Dense>
#include <string_view>
#include <vector>

#include "aggregators/internal/gram_kernel.h"
#include "common/status.h"

namespace phalanx::aggregators::internal {

// The variants built into this binary that this CPU can run, scalar first,
// widest last.
std::vector<const GramKernel*> SupportedGramKernels();

// The kernel for an override value (PHX_KERNEL): empty = the widest
// supported; "scalar", "avx2" or "avx512" = that one, or InvalidArgument if
// the name is unknown or this build or CPU cannot run it.
Result<const GramKernel*> ChooseGramKernel(std::string_view override_name);

// The process's kernel: ChooseGramKernel(getenv("PHX_KERNEL")), evaluated
// once. A refused override stays an error: every PartialGram then returns it
// instead of silently running another kernel than the one asked for.
const Result<const GramKernel*>& ActiveGramKernel();

// PartialGram (gram.h) with a given kernel instead of the active one.
Eigen::MatrixXd PartialGramWith(const GramKernel& kernel,
                                const Eigen::Ref<const Eigen::MatrixXf>& gradients,
                                const Eigen::Ref<const Eigen::MatrixXd>& extras, bool parallel);
Eigen::MatrixXd PartialGramWith(const GramKernel& kernel,
                                const Eigen::Ref<const Eigen::MatrixXd>& gradients,
                                const Eigen::Ref<const Eigen::MatrixXd>& extras, bool parallel);

}  // namespace phalanx::aggregators::internal
