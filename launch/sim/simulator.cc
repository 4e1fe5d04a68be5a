#include "launch/sim/simulator.h"

#include <spdlog/spdlog.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>

#include "aggregators/federated.h"
#include "launch/report/plot.h"
#include "worker/byzantine.h"
#include "worker/model.h"
#include "worker/partition.h"

namespace phalanx::launch {
namespace {

using aggregators::FederatedServer;
using aggregators::SubmitOutcome;
using Clock = std::chrono::steady_clock;

// SplitMix64 step; our own so that results never depend on the standard
// library's distributions.
uint64_t SplitMix(uint64_t* s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
uint64_t Mix(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b = 0) {
  uint64_t s = seed ^ (tag * 0xA24BAED4963EE407ULL) ^ (a * 0xD1B54A32D192ED03ULL) ^
               (b * 0x8CB92BA72F3D8DD7ULL);
  return SplitMix(&s);
}
double Uniform(uint64_t* s) {
  return (static_cast<double>(SplitMix(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
uint64_t Below(uint64_t* s, uint64_t bound) {
  if (bound <= 1) return 0;
  const uint64_t threshold = (0 - bound) % bound;
  while (true) {
    const uint64_t r = SplitMix(s);
    if (r >= threshold) return r % bound;
  }
}

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

// Per-thread buffers of one client training.
struct Scratch {
  std::vector<uint32_t> idx;
  std::vector<size_t> batch;
  std::vector<float> theta, grad, mom, sgrad;
  worker::SparseRows rows;
};

Result<std::vector<std::vector<float>>> LoadTrace(const std::string& path, int64_t clients) {
  std::ifstream in(path);
  if (!in) return NotFound("cannot open speed trace '" + path + "'");
  std::vector<std::vector<float>> t(static_cast<size_t>(clients));
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
    std::istringstream ls(line);
    std::string tok;
    if (!(ls >> tok)) continue;
    const std::string where = path + ":" + std::to_string(lineno) + ": ";
    int64_t c = -1;
    try {
      size_t used = 0;
      c = std::stoll(tok, &used);
      if (used != tok.size()) c = -1;
    } catch (const std::exception&) {
    }
    if (c < 0 || c >= clients) {
      return InvalidArgument(where + "client id '" + tok + "' is not in [0, " +
                             std::to_string(clients) + ")");
    }
    int n = 0;
    while (ls >> tok) {
      double d = 0;
      try {
        size_t used = 0;
        d = std::stod(tok, &used);
        if (used != tok.size()) d = -1;
      } catch (const std::exception&) {
        d = -1;
      }
      if (!(d > 0) || !std::isfinite(d)) {
        return InvalidArgument(where + "duration '" + tok + "' must be a positive number");
      }
      t[static_cast<size_t>(c)].push_back(static_cast<float>(d));
      ++n;
    }
    if (n == 0) return InvalidArgument(where + "client " + std::to_string(c) + " has no duration");
  }
  for (int64_t c = 0; c < clients; ++c) {
    if (t[static_cast<size_t>(c)].empty()) {
      return InvalidArgument("speed trace '" + path + "' has no durations for client " +
                             std::to_string(c) + " (of " + std::to_string(clients) + ")");
    }
  }
  return t;
}

}  // namespace

struct Simulator::Impl {
  std::unique_ptr<worker::TrainTest> owned;
  const worker::TrainTest* data = nullptr;
  std::unique_ptr<worker::Model> model;
  std::optional<worker::Partition> partition;
  std::vector<float> theta0;
  std::vector<float> mean_time;
  std::vector<std::vector<float>> trace;
  std::vector<int64_t> byzantine;  // sorted
  std::vector<size_t> test_idx;
  size_t dense_size = 0, buckets = 0, dim = 0;
  double fx_percent = 0;

  size_t model_size() const { return dense_size + buckets * dim; }

  double Duration(const SimConfig& c, int64_t client, int64_t round) const {
    const double tau = mean_time[static_cast<size_t>(client)];
    if (c.profile == "trace") {
      const auto& v = trace[static_cast<size_t>(client)];
      return v[static_cast<size_t>(round) % v.size()];
    }
    if (c.profile == "exponential" || c.profile == "lognormal") {
      uint64_t s =
          Mix(c.seed, 0x74696d65, static_cast<uint64_t>(client), static_cast<uint64_t>(round));
      if (c.profile == "exponential") return -tau * std::log(Uniform(&s));
      const double z =
          std::sqrt(-2.0 * std::log(Uniform(&s))) * std::cos(6.283185307179586 * Uniform(&s));
      return tau * std::exp(c.sigma * z - 0.5 * c.sigma * c.sigma);
    }
    return tau;
  }

  // One local training: a pure function of (base, client, round, seed).
  void Train(const SimConfig& c, int64_t client, int64_t round, const std::vector<float>& base,
             std::vector<float>* delta) const {
    thread_local Scratch s;
    partition->ClientIndices(client, &s.idx);
    const size_t n = s.idx.size();
    const size_t bsz = static_cast<size_t>(c.batch_size);
    const int64_t steps =
        c.epochs > 0 ? static_cast<int64_t>(c.epochs) * static_cast<int64_t>((n + bsz - 1) / bsz)
                     : c.steps;
    uint64_t rng =
        Mix(c.seed, 0x747261696e, static_cast<uint64_t>(client), static_cast<uint64_t>(round));
    const size_t d = base.size();
    // The first step reads `base` in place; later steps read s.theta. The
    // last plain-SGD step writes the delta directly (θ⁺ − base), so a
    // one-step client copies no model.
    const float* cur = base.data();
    s.theta.resize(d);
    s.grad.resize(d);
    delta->resize(d);
    if (c.momentum > 0) s.mom.assign(d, 0.0f);
    s.batch.resize(bsz);
    const float lr = static_cast<float>(c.learning_rate);
    const worker::Dataset& train = data->train;
    bool delta_done = false;
    for (int64_t k = 0; k < steps; ++k) {
      for (auto& b : s.batch) b = s.idx[Below(&rng, n)];
      if (buckets == 0) {
        model->DenseLossAndGradientFast(train, s.batch, cur, s.grad.data());
      } else {
        s.rows.keys = model->SparseKeys(train, s.batch);
        s.rows.values.resize(s.rows.keys.size() * dim);
        for (size_t r = 0; r < s.rows.keys.size(); ++r) {
          std::copy_n(cur + dense_size + s.rows.keys[r] * dim, dim, s.rows.values.data() + r * dim);
        }
        s.sgrad.resize(s.rows.values.size());
        model->LossAndGradient(train, s.batch, cur, s.rows, s.grad.data(), s.sgrad.data());
        std::fill(s.grad.begin() + static_cast<ptrdiff_t>(dense_size), s.grad.end(), 0.0f);
        for (size_t r = 0; r < s.rows.keys.size(); ++r) {
          std::copy_n(s.sgrad.data() + r * dim, dim,
                      s.grad.data() + dense_size + s.rows.keys[r] * dim);
        }
      }
      float scale = 1.0f;
      if (c.clip > 0) {
        double sq = 0;
        for (float g : s.grad) sq += static_cast<double>(g) * g;
        const double norm = std::sqrt(sq);
        if (norm > c.clip) scale = static_cast<float>(c.clip / norm);
      }
      float* theta = s.theta.data();
      const float* g = s.grad.data();
      if (c.momentum > 0) {
        const auto beta = static_cast<float>(c.momentum);
        for (size_t j = 0; j < d; ++j) {
          s.mom[j] = beta * s.mom[j] + scale * g[j];
          theta[j] = cur[j] - lr * s.mom[j];
        }
      } else if (k + 1 == steps) {
        const float step = lr * scale;
        const float* b0 = base.data();
        float* out = delta->data();
        for (size_t j = 0; j < d; ++j) {
          const float t = cur[j] - step * g[j];
          out[j] = t - b0[j];
        }
        delta_done = true;
      } else {
        const float step = lr * scale;
        for (size_t j = 0; j < d; ++j) theta[j] = cur[j] - step * g[j];
      }
      cur = theta;
    }
    if (!delta_done) {
      for (size_t j = 0; j < d; ++j) (*delta)[j] = cur[j] - base[j];
    }
    if (c.attack != "none" && round >= c.attack_from &&
        std::binary_search(byzantine.begin(), byzantine.end(), client)) {
      worker::ByzantineOptions bo;
      bo.attack = c.attack;
      bo.scale = c.attack_scale;
      bo.sigma = c.attack_sigma;
      bo.seed = Mix(c.seed, 0x62797a, static_cast<uint64_t>(client), static_cast<uint64_t>(round));
      worker::ByzantineBehaviour lie(bo);
      (void)lie.Corrupt(std::span<float>(*delta), {});
    }
  }

  // Test accuracy and mean loss, in fixed chunks reduced in order.
  std::pair<double, double> Evaluate(const std::vector<float>& theta,
                                     tbb::task_arena& arena) const {
    constexpr size_t kChunk = 512;
    const size_t n = test_idx.size();
    if (n == 0) return {0.0, 0.0};
    const size_t chunks = (n + kChunk - 1) / kChunk;
    std::vector<double> correct(chunks), loss(chunks);
    worker::SparseRows rows;
    if (buckets > 0) {
      rows.keys.resize(buckets);
      for (size_t r = 0; r < buckets; ++r) rows.keys[r] = r;
      rows.values.assign(theta.begin() + static_cast<ptrdiff_t>(dense_size), theta.end());
    }
    arena.execute([&] {
      tbb::parallel_for(size_t{0}, chunks, [&](size_t k) {
        const size_t b = k * kChunk, e = std::min(n, b + kChunk);
        std::span<const size_t> idx(test_idx.data() + b, e - b);
        thread_local std::vector<float> g, sg;
        g.resize(dense_size);
        sg.resize(rows.values.size());
        const float l = model->LossAndGradient(data->test, idx, theta.data(), rows, g.data(),
                                               sg.empty() ? nullptr : sg.data());
        loss[k] = static_cast<double>(l) * static_cast<double>(e - b);
        const auto pred = model->Predict(data->test, idx, theta.data(), rows);
        double ok = 0;
        for (size_t i = 0; i < pred.size(); ++i) ok += pred[i] == data->test.labels[idx[i]];
        correct[k] = ok;
      });
    });
    double c = 0, l = 0;
    for (size_t k = 0; k < chunks; ++k) {
      c += correct[k];
      l += loss[k];
    }
    return {c / static_cast<double>(n), l / static_cast<double>(n)};
  }
};

namespace {

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

Simulator::Simulator(SimConfig config) : config_(std::move(config)), impl_(new Impl) {}
Simulator::~Simulator() = default;

size_t Simulator::model_size() const { return impl_->model_size(); }

size_t Simulator::IdleClientBytes() {
  // rounds_, state_, idle_, idle_pos_, and τ_i in the simulator and the server.
  return sizeof(uint32_t) + sizeof(uint8_t) + 2 * sizeof(uint32_t) + 2 * sizeof(float);
}

Result<std::unique_ptr<Simulator>> Simulator::Create(const SimConfig& config) {
  auto tt = std::make_unique<worker::TrainTest>();
  if (config.dataset == "fashion-mnist") {
    PHX_ASSIGN_OR_RETURN(*tt, worker::LoadFashionMnist(config.path));
  } else {
    worker::SpamOptions so;
    so.seed = config.partition_seed;
    so.test_fraction = config.test_fraction;
    PHX_ASSIGN_OR_RETURN(*tt, worker::LoadSpamAssassin(config.path, so));
  }
  worker::TruncateDataset(&tt->train, static_cast<size_t>(config.max_train));
  PHX_ASSIGN_OR_RETURN(auto sim, Create(config, tt.get()));
  if (!sim->impl_->owned) sim->impl_->owned = std::move(tt);
  return sim;
}

Result<std::unique_ptr<Simulator>> Simulator::Create(const SimConfig& config,
                                                     const worker::TrainTest* data) {
  if (data == nullptr) return InvalidArgument("no data");
  std::unique_ptr<Simulator> sim(new Simulator(config));
  Impl& im = *sim->impl_;
  const SimConfig& c = sim->config_;
  im.data = data;
  if (c.model == "embedding-bag") {
    // Token ids fold into hash_buckets embedding rows so that a model is one
    // dense vector [dense | buckets x dim] the aggregation rules can take.
    im.owned = std::make_unique<worker::TrainTest>(*data);
    for (auto* ds : {&im.owned->train, &im.owned->test}) {
      for (auto& ids : ds->ids) {
        for (auto& id : ids) id %= static_cast<uint64_t>(c.hash_buckets);
        std::sort(ids.begin(), ids.end());
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      }
      ds->values.clear();
    }
    im.data = im.owned.get();
    im.buckets = static_cast<size_t>(c.hash_buckets);
    im.dim = static_cast<size_t>(c.embedding_dim);
  }
  worker::ModelOptions mo;
  mo.kind = c.model;
  mo.input_dim = im.data->train.dense() ? im.data->train.feature_dim : 0;
  mo.num_classes = im.data->train.num_classes;
  mo.hidden = static_cast<size_t>(c.hidden);
  mo.embedding_dim = static_cast<size_t>(c.embedding_dim);
  mo.l2 = static_cast<float>(c.l2);
  PHX_ASSIGN_OR_RETURN(im.model, worker::CreateModel(mo));
  PHX_RETURN_IF_ERROR(im.model->Validate(im.data->train));
  PHX_RETURN_IF_ERROR(im.model->Validate(im.data->test));
  im.dense_size = im.model->dense_size();
  worker::PartitionOptions po;
  po.method = c.partition;
  po.alpha = c.alpha;
  po.num_clients = c.clients;
  po.samples_per_client = c.samples_per_client;
  po.seed = c.partition_seed;
  PHX_ASSIGN_OR_RETURN(auto part, worker::Partition::Create(im.data->train, po));
  im.partition.emplace(std::move(part));
  // Speeds: τ_i per client (the server's Fraboni weights use them too).
  im.mean_time.resize(static_cast<size_t>(c.clients));
  if (c.profile == "trace") {
    PHX_ASSIGN_OR_RETURN(im.trace, LoadTrace(c.trace, c.clients));
    for (size_t i = 0; i < im.trace.size(); ++i) {
      double s = 0;
      for (float v : im.trace[i]) s += v;
      im.mean_time[i] = static_cast<float>(s / static_cast<double>(im.trace[i].size()));
    }
  } else {
    const double x = c.ProfilePercent();
    for (int64_t i = 0; i < c.clients; ++i) {
      im.mean_time[static_cast<size_t>(i)] =
          static_cast<float>(aggregators::FxTime(i, c.clients, x));
    }
  }
  for (const auto& run : c.runs) {
    const int64_t cc = c.concurrency > 0 ? c.concurrency : c.clients;
    if (run.server.algorithm == "fedbuff" && run.server.redispatch == "at-trigger" &&
        run.server.buffer_size > cc) {
      return InvalidArgument("run '" + run.name + "': buffer_size " +
                             std::to_string(run.server.buffer_size) +
                             " can never fill with clients waiting for the trigger (only " +
                             std::to_string(cc) + " train at once)");
    }
  }
  // Byzantine clients spread evenly over the ids (hence over the speeds).
  for (int64_t j = 0; j < c.byzantine_count; ++j) {
    im.byzantine.push_back(j * c.clients / c.byzantine_count);
  }
  // θ⁰ uniform in [-s, s] from the seed.
  im.theta0.resize(im.model_size());
  uint64_t s = Mix(c.seed, 0x696e6974, 0);
  for (auto& v : im.theta0) {
    v = static_cast<float>((2.0 * Uniform(&s) - 1.0) * c.init_scale);
  }
  const size_t nt = im.data->test.size();
  const size_t keep = c.max_test > 0 ? std::min(nt, static_cast<size_t>(c.max_test)) : nt;
  im.test_idx.resize(keep);
  for (size_t i = 0; i < keep; ++i) im.test_idx[i] = i;
  return sim;
}

Result<RunResult> Simulator::Run(size_t index, int threads) {
  if (index >= config_.runs.size()) return InvalidArgument("no run " + std::to_string(index));
  RunLoop loop(*impl_, config_, config_.runs[index], threads);
  return loop.Go(nullptr);
}

Result<std::vector<RunResult>> Simulator::RunAll(const SimulateOptions& o) {
  std::vector<RunResult> out;
  for (const auto& run : config_.runs) {
    RunLoop loop(*impl_, config_, run, o.threads);
    PHX_ASSIGN_OR_RETURN(RunResult r, loop.Go(o.progress));
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

Status WriteSimulationOutputs(const SimConfig& c, const std::vector<RunResult>& runs,
                              const std::string& dir, bool plots) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "curves", ec);
  fs::create_directories(fs::path(dir) / "staleness", ec);
  if (ec) return Internal("cannot create '" + dir + "': " + ec.message());
  const char* kHeader =
      "virtual_time,wall_seconds,version,updates,test_accuracy,test_loss,staleness_mean,"
      "staleness_max,step_weight";
  std::ofstream all(fs::path(dir) / "metrics.csv");
  all << "run," << kHeader << "\n";
  for (const auto& r : runs) {
    std::ofstream one(fs::path(dir) / "curves" / (r.name + ".csv"));
    one << kHeader << "\n";
    for (const auto& p : r.curve) {
      std::ostringstream row;
      row.precision(8);
      row << p.virtual_time << "," << p.wall_seconds << "," << p.version << "," << p.updates << ","
          << p.test_accuracy << "," << p.test_loss << "," << p.staleness_mean << ","
          << p.staleness_max << "," << p.step_weight << "\n";
      one << row.str();
      all << r.name << "," << row.str();
    }
    std::ofstream h(fs::path(dir) / "staleness" / (r.name + ".csv"));
    h << "staleness,count,fraction\n";
    for (size_t s = 0; s < r.staleness_histogram.size(); ++s) {
      h << s << "," << r.staleness_histogram[s] << ","
        << (r.accepted > 0
                ? static_cast<double>(r.staleness_histogram[s]) / static_cast<double>(r.accepted)
                : 0.0)
        << "\n";
    }
  }
  if (!all) return Internal("cannot write metrics.csv in '" + dir + "'");
  nlohmann::json j;
  j["config"] = c.source;
  j["clients"] = c.clients;
  j["time_budget"] = c.time_budget;
  j["profile"] = c.profile;
  j["alpha"] = c.alpha;
  j["partition"] = c.partition;
  j["model"] = c.model;
  j["dataset"] = c.dataset;
  j["local_steps"] = c.steps;
  j["batch_size"] = c.batch_size;
  j["learning_rate"] = c.learning_rate;
  for (const auto& r : runs) {
    nlohmann::json x;
    x["name"] = r.name;
    x["algorithm"] = r.algorithm;
    x["final_accuracy"] = r.final_accuracy;
    x["best_accuracy"] = r.best_accuracy;
    x["std_last20"] = r.std_last20;
    x["server_steps"] = r.server_steps;
    x["trainings"] = r.trainings;
    x["accepted_updates"] = r.accepted;
    x["dropped_dropout"] = r.dropped_dropout;
    x["dropped_nonfinite"] = r.dropped_nonfinite;
    x["rejected_stale"] = r.rejected_stale;
    x["robust_failures"] = r.robust_failures;
    x["staleness_mean"] = r.staleness_mean;
    x["wall_seconds"] = r.wall_seconds;
    x["updates_per_wall_second"] =
        r.wall_seconds > 0 ? static_cast<double>(r.trainings) / r.wall_seconds : 0.0;
    j["runs"].push_back(x);
  }
  std::ofstream(fs::path(dir) / "summary.json") << j.dump(2) << "\n";
  if (!plots || runs.empty()) return Status::Ok();
  PlotSpec acc;
  acc.output_path = (fs::path(dir) / "accuracy.png").string();
  acc.title = c.title.empty() ? "test accuracy vs virtual time" : c.title;
  acc.x_column = "virtual_time";
  acc.x_label = "virtual time (slowest client's update time = 1)";
  acc.y_label = "test accuracy";
  PlotSpec st = acc;
  st.output_path = (fs::path(dir) / "staleness.png").string();
  st.title = "staleness of accepted updates";
  st.x_column = "staleness";
  st.x_label = "staleness (server versions)";
  st.y_label = "fraction of updates";
  for (const auto& r : runs) {
    acc.series.push_back({"test_accuracy", r.name, PlotAxis::kLeft,
                          (fs::path(dir) / "curves" / (r.name + ".csv")).string()});
    st.series.push_back({"fraction", r.name, PlotAxis::kLeft,
                         (fs::path(dir) / "staleness" / (r.name + ".csv")).string()});
  }
  PHX_RETURN_IF_ERROR(PlotLines(acc));
  return PlotLines(st);
}

}  // namespace phalanx::launch
