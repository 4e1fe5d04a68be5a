#include "launch/sim/simulator.h"

#include <ostream>

#include "launch/sim/internal/sim_impl.h"

namespace phalanx::launch {

Simulator::Simulator(SimConfig config) : config_(std::move(config)), impl_(new Impl) {}
Simulator::~Simulator() = default;

size_t Simulator::model_size() const { return impl_->model_size(); }

size_t Simulator::IdleClientBytes() {
  // rounds_, state_, idle_, idle_pos_, and τ_i in the simulator and the server.
  return sizeof(uint32_t) + sizeof(uint8_t) + 2 * sizeof(uint32_t) + 2 * sizeof(float);
}

Result<RunResult> Simulator::Run(size_t index, int threads) {
  if (index >= config_.runs.size()) return InvalidArgument("no run " + std::to_string(index));
  return internal::RunEventLoop(*impl_, config_, config_.runs[index], threads, nullptr);
}

Result<std::vector<RunResult>> Simulator::RunAll(const SimulateOptions& o) {
  std::vector<RunResult> out;
  for (const auto& run : config_.runs) {
    PHX_ASSIGN_OR_RETURN(RunResult r,
                         internal::RunEventLoop(*impl_, config_, run, o.threads, o.progress));
    if (o.progress) {
      *o.progress << run.name << ": final " << r.final_accuracy << " best " << r.best_accuracy
                  << " std(last 20%) " << r.std_last20 << ", " << r.server_steps
                  << " server steps, " << r.accepted << " updates, mean staleness "
                  << r.staleness_mean << ", " << r.wall_seconds << " s" << std::endl;
    }
    out.push_back(std::move(r));
  }
  if (!o.out_dir.empty())
    PHX_RETURN_IF_ERROR(WriteSimulationOutputs(config_, out, o.out_dir, o.plots));
  return out;
}

}  // namespace phalanx::launch
