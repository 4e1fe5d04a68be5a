// The event loop of one simulated run: a virtual clock of client end,
// server tick and evaluation events, the server's aggregators::FederatedServer
// strategy, and clients trained ahead in parallel batches.

#include <spdlog/spdlog.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <fstream>
#include <set>

#include "aggregators/federated.h"
#include "launch/sim/internal/sim_impl.h"

namespace phalanx::launch::internal {
namespace {

using aggregators::FederatedServer;
using aggregators::SubmitOutcome;
using Clock = std::chrono::steady_clock;

// Resident set size of this process (/proc/self/statm), 0 if unavailable.
int64_t ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  if (!(in >> pages >> resident)) return 0;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

constexpr int kEnd = 0, kTick = 1, kEval = 2;  // order of events at equal times

struct Event {
  double time;
  int kind;
  uint64_t seq;
  int64_t slot;
  bool operator<(const Event& o) const {
    if (time != o.time) return time < o.time;
    if (kind != o.kind) return kind < o.kind;
    return seq < o.seq;
  }
};

struct Flight {
  int64_t client = -1;
  int64_t round = 0;
  int64_t base_version = 0;
  std::shared_ptr<const std::vector<float>> base;
  bool dropped = false;
  bool trained = false;
  bool queued = false;  // in the background training batch
  std::vector<float> delta;
};

// One algorithm run over the population: the event loop.
class RunLoop {
 public:
  RunLoop(const Simulator::Impl& im, const SimConfig& c, const SimRun& run, int threads)
      : im_(im),
        c_(c),
        run_(run),
        arena_(threads > 0 ? threads : tbb::task_arena::automatic),
        threads_(threads > 0 ? threads : tbb::this_task_arena::max_concurrency()) {}
  ~RunLoop() { WaitBackground(); }
  RunLoop(const RunLoop&) = delete;
  RunLoop& operator=(const RunLoop&) = delete;

  Result<RunResult> Go(std::ostream* progress) {
    const auto t0 = Clock::now();
    const int64_t m = c_.clients;
    PHX_ASSIGN_OR_RETURN(
        server_, FederatedServer::Create(run_.server, m, im_.theta0, {}, im_.mean_time, c_.seed));
    rounds_.assign(static_cast<size_t>(m), 0);
    state_.assign(static_cast<size_t>(m), 0);
    idle_.resize(static_cast<size_t>(m));
    idle_pos_.resize(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      idle_[static_cast<size_t>(i)] = static_cast<uint32_t>(i);
      idle_pos_[static_cast<size_t>(i)] = static_cast<uint32_t>(i);
    }
    concurrency_ = c_.concurrency > 0 ? c_.concurrency : m;
    rng_ = Mix(c_.seed, 0x73656c, 0);
    const size_t d = im_.model_size();
    window_ = static_cast<size_t>(
        std::clamp<int64_t>(static_cast<int64_t>((64u << 20) / (4 * d)), 2 * threads_, 256));
    const double T = c_.time_budget;
    // Evaluation points: k·eval_every below T, and T itself.
    if (c_.eval_every > 0) {
      for (int64_t k = 0; static_cast<double>(k) * c_.eval_every < T; ++k) {
        events_.insert({static_cast<double>(k) * c_.eval_every, kEval, seq_++, -1});
      }
    } else {
      events_.insert({0.0, kEval, seq_++, -1});
    }
    events_.insert({T, kEval, seq_++, -1});
    if (run_.server.algorithm == "fedfix")
      events_.insert({server_->next_tick(), kTick, seq_++, -1});
    if (run_.server.algorithm == "fedavg") {
      PHX_RETURN_IF_ERROR(StartRound(0.0));
    } else {
      Fill(0.0);
    }
    const std::string& alg = run_.server.algorithm;
    at_trigger_ = run_.server.redispatch == "at-trigger" && alg != "fedavg";
    RunResult res;
    res.name = run_.name;
    res.algorithm = alg;
    double next_progress = 0.1 * T;
    while (!events_.empty()) {
      const Event e = *events_.begin();
      if (e.time > T) break;
      if (e.kind == kEnd && !flights_[static_cast<size_t>(e.slot)].trained &&
          !flights_[static_cast<size_t>(e.slot)].dropped) {
        WaitBackground();
        if (!flights_[static_cast<size_t>(e.slot)].trained) TrainAhead(false);
        TrainAhead(true);  // the next window, while this thread serves events
      }
      events_.erase(events_.begin());
      const double now = e.time;
      if (e.kind == kEnd) {
        PHX_RETURN_IF_ERROR(End(e.slot, now, &res));
      } else if (e.kind == kTick) {
        PHX_ASSIGN_OR_RETURN(int steps, server_->Tick(now));
        (void)steps;
        ReleaseWaiting(now);
        if (server_->next_tick() <= T) events_.insert({server_->next_tick(), kTick, seq_++, -1});
      } else {
        EvalPoint p;
        p.virtual_time = now;
        p.wall_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        p.version = server_->version();
        p.updates = server_->state().accepted;
        std::tie(p.test_accuracy, p.test_loss) = im_.Evaluate(server_->model(), arena_);
        p.staleness_mean = interval_count_ > 0 ? interval_sum_ / interval_count_ : 0.0;
        p.staleness_max = interval_max_;
        p.step_weight = server_->state().last_step_weight;
        interval_sum_ = interval_count_ = 0;
        interval_max_ = 0;
        res.curve.push_back(p);
        if (progress && now >= next_progress) {
          *progress << "  " << run_.name << ": t=" << now << "/" << T << " acc=" << p.test_accuracy
                    << " version=" << p.version << " updates=" << p.updates << std::endl;
          while (next_progress <= now) next_progress += 0.1 * T;
        }
      }
    }
    WaitBackground();
    const auto& st = server_->state();
    res.server_steps = st.version;
    res.accepted = st.accepted;
    res.dropped_nonfinite = st.rejected_nonfinite;
    res.rejected_stale = st.rejected_stale;
    res.robust_failures = st.robust_failures;
    int64_t last = 0;
    double sum = 0;
    for (size_t s = 0; s < st.staleness_histogram.size(); ++s) {
      if (st.staleness_histogram[s] > 0) last = static_cast<int64_t>(s);
      sum += static_cast<double>(s) * static_cast<double>(st.staleness_histogram[s]);
    }
    res.staleness_histogram.assign(st.staleness_histogram.begin(),
                                   st.staleness_histogram.begin() + last + 1);
    res.staleness_mean = st.accepted > 0 ? sum / static_cast<double>(st.accepted) : 0.0;
    res.final_model = st.model;
    if (!res.curve.empty()) {
      res.final_accuracy = res.curve.back().test_accuracy;
      std::vector<double> tail;
      for (const auto& p : res.curve) {
        res.best_accuracy = std::max(res.best_accuracy, p.test_accuracy);
        if (p.virtual_time >= 0.8 * T) tail.push_back(p.test_accuracy);
      }
      double mean = 0, var = 0;
      for (double a : tail) mean += a / static_cast<double>(tail.size());
      for (double a : tail) var += (a - mean) * (a - mean) / static_cast<double>(tail.size());
      res.std_last20 = std::sqrt(var);
    }
    res.wall_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    res.train_wall_seconds = train_seconds_;
    res.resident_bytes = ResidentBytes();
    return res;
  }

 private:
  void AddIdle(int64_t c) {
    state_[static_cast<size_t>(c)] = 0;
    idle_pos_[static_cast<size_t>(c)] = static_cast<uint32_t>(idle_.size());
    idle_.push_back(static_cast<uint32_t>(c));
  }
  void RemoveIdle(int64_t c) {
    const uint32_t pos = idle_pos_[static_cast<size_t>(c)];
    const uint32_t last = idle_.back();
    idle_[pos] = last;
    idle_pos_[last] = pos;
    idle_.pop_back();
  }

  const std::shared_ptr<const std::vector<float>>& Snapshot() {
    if (snapshot_version_ != server_->version() || !snapshot_) {
      snapshot_ = std::make_shared<const std::vector<float>>(server_->model());
      snapshot_version_ = server_->version();
    }
    return snapshot_;
  }

  void Dispatch(int64_t c, double now) {
    int64_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = static_cast<int64_t>(flights_.size());
      flights_.emplace_back();
    }
    Flight& f = flights_[static_cast<size_t>(slot)];
    f.client = c;
    f.round = rounds_[static_cast<size_t>(c)]++;
    f.base_version = server_->version();
    f.base = Snapshot();
    f.trained = false;
    f.dropped = false;
    if (c_.dropout > 0) {
      uint64_t s =
          Mix(c_.seed, 0x64726f70, static_cast<uint64_t>(c), static_cast<uint64_t>(f.round));
      f.dropped = Uniform(&s) < c_.dropout;
    }
    state_[static_cast<size_t>(c)] = 1;
    ++in_flight_;
    events_.insert({now + im_.Duration(c_, c, f.round), kEnd, seq_++, slot});
  }

  // Starts idle clients up to the concurrency limit: all of them in id order
  // when they fit (Fraboni: every returning client restarts), else a uniform
  // random choice (FLSim's random user selection).
  void Fill(double now) {
    int64_t free = concurrency_ - in_flight_;
    if (free <= 0 || idle_.empty()) return;
    if (free >= static_cast<int64_t>(idle_.size())) {
      std::vector<uint32_t> all(idle_);
      std::sort(all.begin(), all.end());
      for (uint32_t c : all) {
        RemoveIdle(c);
        Dispatch(c, now);
      }
      return;
    }
    while (free-- > 0) {
      const uint32_t c = idle_[Below(&rng_, idle_.size())];
      RemoveIdle(c);
      Dispatch(c, now);
    }
  }

  Status StartRound(double now) {
    PHX_ASSIGN_OR_RETURN(auto participants, server_->BeginRound());
    for (int64_t c : participants) {
      RemoveIdle(c);
      Dispatch(c, now);
    }
    return Status::Ok();
  }

  void ReleaseWaiting(double now) {
    std::sort(waiting_.begin(), waiting_.end());
    for (int64_t c : waiting_) AddIdle(c);
    waiting_.clear();
    Fill(now);
  }

  // Trains the next pending clients in event order (up to window_ of them,
  // none ending after the budget) on the arena. In the background the call
  // returns at once: the arena's worker threads train while this thread runs
  // the serial event loop, and WaitBackground joins them. A training is a
  // pure function of its flight, so when it runs never changes a result.
  void TrainAhead(bool background) {
    std::vector<Flight*> todo;
    for (const Event& e : events_) {
      // Clients ending after the budget never report: do not train them.
      if (todo.size() >= window_ || e.time > c_.time_budget) break;
      if (e.kind != kEnd) continue;
      Flight& f = flights_[static_cast<size_t>(e.slot)];
      if (!f.trained && !f.dropped && !f.queued) todo.push_back(&f);
    }
    // Delta buffers come back from ended clients (End), so steady state
    // allocates none.
    for (Flight* f : todo) {
      f->queued = true;
      if (f->delta.capacity() == 0 && !delta_pool_.empty()) {
        f->delta = std::move(delta_pool_.back());
        delta_pool_.pop_back();
      }
    }
    if (todo.empty()) return;
    const auto body = [this](const std::vector<Flight*>& batch) {
      tbb::parallel_for(size_t{0}, batch.size(), [&](size_t i) {
        Flight& f = *batch[i];
        im_.Train(c_, f.client, f.round, *f.base, &f.delta);
      });
    };
    if (background) {
      background_ = std::move(todo);
      arena_.execute([&] { group_.run([this, body] { body(background_); }); });
      return;
    }
    const auto t0 = Clock::now();
    arena_.execute([&] { body(todo); });
    for (Flight* f : todo) {
      f->trained = true;
      f->queued = false;
    }
    train_seconds_ += std::chrono::duration<double>(Clock::now() - t0).count();
  }

  // Joins the background batch (helping it), then marks it trained.
  void WaitBackground() {
    if (background_.empty()) return;
    const auto t0 = Clock::now();
    arena_.execute([&] { group_.wait(); });
    for (Flight* f : background_) {
      f->trained = true;
      f->queued = false;
    }
    background_.clear();
    train_seconds_ += std::chrono::duration<double>(Clock::now() - t0).count();
  }

  Status End(int64_t slot, double now, RunResult* res) {
    Flight f = std::move(flights_[static_cast<size_t>(slot)]);
    flights_[static_cast<size_t>(slot)] = Flight{};
    free_.push_back(slot);
    --in_flight_;
    ++res->trainings;
    const int64_t c = f.client;
    const bool fedavg = run_.server.algorithm == "fedavg";
    bool stepped = false;
    if (f.dropped) {
      ++res->dropped_dropout;
      if (fedavg) {
        PHX_ASSIGN_OR_RETURN(stepped, server_->Abandon(c));
      }
    } else {
      const int64_t staleness = server_->version() - f.base_version;
      aggregators::ClientUpdate u;
      u.client = c;
      u.delta = f.delta;
      u.base_version = f.base_version;
      u.num_examples = im_.partition->ClientSize(c);
      u.arrival_time = now;
      u.base = *f.base;
      PHX_ASSIGN_OR_RETURN(SubmitOutcome out, server_->Submit(u));
      if (out == SubmitOutcome::kApplied || out == SubmitOutcome::kBuffered) {
        interval_sum_ += static_cast<double>(staleness);
        ++interval_count_;
        interval_max_ = std::max(interval_max_, staleness);
      }
      stepped = out == SubmitOutcome::kApplied || (fedavg && server_->state().round_open.empty());
    }
    if (f.delta.capacity() > 0) delta_pool_.push_back(std::move(f.delta));
    f.base.reset();  // the version's snapshot dies with its last client
    if (fedavg) {
      AddIdle(c);
      if (server_->state().round_open.empty()) return StartRound(now);
      return Status::Ok();
    }
    if (at_trigger_) {
      state_[static_cast<size_t>(c)] = 2;
      waiting_.push_back(c);
      if (stepped && run_.server.algorithm == "fedbuff") ReleaseWaiting(now);
      return Status::Ok();
    }
    AddIdle(c);
    Fill(now);
    return Status::Ok();
  }

  const Simulator::Impl& im_;
  const SimConfig& c_;
  const SimRun& run_;
  tbb::task_arena arena_;
  int threads_;
  std::unique_ptr<FederatedServer> server_;
  // Population: a few bytes per registered client.
  std::vector<uint32_t> rounds_;
  std::vector<uint8_t> state_;  // 0 idle, 1 training, 2 waiting for the trigger
  std::vector<uint32_t> idle_, idle_pos_;
  std::vector<int64_t> waiting_;
  // A deque: Dispatch appends slots while background training holds
  // pointers to others.
  std::deque<Flight> flights_;
  std::vector<int64_t> free_;
  std::vector<std::vector<float>> delta_pool_;
  std::set<Event> events_;
  uint64_t seq_ = 0;
  uint64_t rng_ = 0;
  int64_t in_flight_ = 0, concurrency_ = 0;
  bool at_trigger_ = false;
  size_t window_ = 32;
  std::shared_ptr<const std::vector<float>> snapshot_;
  int64_t snapshot_version_ = -1;
  double interval_sum_ = 0, interval_count_ = 0;
  int64_t interval_max_ = 0;
  double train_seconds_ = 0;
  // Background training (TrainAhead(true)); declared last so that it is
  // destroyed first, and joined by the destructor on any early return.
  std::vector<Flight*> background_;
  tbb::task_group group_;
};

}  // namespace

Result<RunResult> RunEventLoop(const Simulator::Impl& im, const SimConfig& c, const SimRun& run,
                               int threads, std::ostream* progress) {
  RunLoop loop(im, c, run, threads);
  return loop.Go(progress);
}

}  // namespace phalanx::launch::internal
