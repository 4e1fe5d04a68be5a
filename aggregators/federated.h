#pragma once
// Server-side federated aggregation rules as explicit state machines
// (docs/federated.md): synchronous FedAvg, asynchronous FedAvg as
// Fraboni et al. define it, FedAsync, FedBuff and FedFix, behind the one
// interface of docs/federated.md. Pure library: no clock, no I/O, no threads. The
// caller (the simulator, later a ps server in live mode) feeds updates and
// timer ticks; everything the server remembers lives in FederatedState, which
// cereal can save and restore (SaveState / LoadState).
//
// Sign convention: a client's delta is Δ = θ⁺ − θ_base (Fraboni's), and the
// server ADDS η_g·Σ w_i Δ_i. FedBuff's "θ ← θ − η_g·U/K_b with u = old − new"
// is the same step written with the opposite sign.
//
// Every rule reduces a set of weighted deltas {(w_i, Δ_i)} to one step
// Σ w_i Δ_i. A robust rule R (aggregators/aggregator.h, e.g. "flag", "nna")
// replaces that weighted sum by R(v_1..v_n) with v_i = n·w_i·Δ_i, whose plain
// mean is exactly Σ w_i Δ_i; R = "mean" takes the exact (summing) path. Robust
// rules apply to sets (FedAvg rounds, FedBuff buffers, FedFix windows), not to
// single-update rules (async, FedAsync).
//
// Threading: a FederatedServer is owned by one thread (the simulator's event
// loop); no method may be called concurrently.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "aggregators/aggregator.h"
#include "common/status.h"

namespace phalanx::aggregators {

// Staleness scaling s(d) (docs/federated.md, "Notation"). Names: constant (1), polynomial
// ((d+1)^-a), hinge (1 if d <= b else 1/(a(d-b)+1)), sqrt (1/sqrt(1+d),
// FedBuff's default).
struct StalenessOptions {
  std::string fn = "constant";
  double a = 0.5;
  double b = 4.0;
};
Status ValidateStaleness(const StalenessOptions& s);
double StalenessWeight(const StalenessOptions& s, int64_t staleness);

struct FederatedOptions {
  // fedavg | async | fedasync | fedbuff | fedfix
  std::string algorithm = "fedavg";
  double server_lr = 1.0;  // η_g (delta-add rules)
  // Client weights d_i:
  //  fedavg: importance (w_i = p_i·M/m, Fraboni's "FL" with full participation)
  //          | data-size (w_i = n_i / Σ_{S_t} n_j, McMahan)
  //  async:  fraboni (d_i = p_i·τ_i·Σ_j 1/τ_j, unbiased) | identical (d_i = 1)
  //  fedfix: fraboni (d_i = p_i·⌈τ_i/Δt⌉) | identical (d_i = p_i)
  //  fedbuff: identical (1/K_b); fedasync: ignored.
  // Empty = the algorithm's default (importance, fraboni, fraboni, identical).
  std::string weights;
  int clients_per_round = 0;  // fedavg: m sampled per round, 0 = all M
  int buffer_size = 10;       // fedbuff: K_b
  double window = 0.5;        // fedfix: Δt (virtual time)
  double mix_alpha = 0.6;     // fedasync: α
  // Staleness scaling; empty fn = default (sqrt for fedbuff, constant else).
  StalenessOptions staleness{""};
  int64_t max_staleness = -1;  // updates staler than this are rejected; -1 = no limit
  // When a client that finished may start again: "immediately" (FedBuff,
  // FedAsync, async) or "at-trigger" (Fraboni's FedBuff-c, FedFix). Empty =
  // algorithm default. Read by the dispatcher (simulator), not by the server.
  std::string redispatch;
  // Rule replacing the plain weighted mean over a round / buffer / window.
  AggregatorOptions robust;
};

// Fills algorithm defaults and checks ranges. InvalidArgument names the key.
Status ResolveFederatedOptions(FederatedOptions* o);

// One arriving client update (docs/federated.md, "One interface").
struct ClientUpdate {
  int64_t client = 0;
  std::span<const float> delta;  // Δ = θ⁺ − θ_base, model_size floats
  int64_t base_version = 0;      // server version the client started from
  int64_t num_examples = 1;      // n_i
  double arrival_time = 0.0;     // virtual time (informational; FedFix uses Tick)
  // θ_base itself; needed by fedasync only (it mixes models, not deltas).
  std::span<const float> base;
};

enum class SubmitOutcome {
  kBuffered,       // accepted, waiting for the trigger
  kApplied,        // accepted and the server stepped (version advanced)
  kRejectedStale,  // staleness > max_staleness
  kRejectedNonFinite,
  kRejectedNotInRound,  // fedavg: client is not an open participant
};

// Everything the server remembers. Value type; serialize() is cereal's hook.
struct FederatedState {
  struct Pending {
    int64_t client = 0;
    int64_t base_version = 0;
    int64_t num_examples = 0;
    double weight = 0;         // final w_i (for data-size: n_i, normalised at close)
    std::vector<float> delta;  // kept only when a robust rule needs the vectors
    template <class A>
    void serialize(A& ar) {
      ar(client, base_version, num_examples, weight, delta);
    }
  };
  int64_t version = 0;
  std::vector<float> model;
  std::vector<double> accumulator;  // running Σ w_i Δ_i (plain mean path)
  std::vector<Pending> pending;     // current round / buffer / window
  double pending_weight = 0;        // Σ w_i over pending
  std::vector<int64_t> round_open;  // fedavg: participants not yet returned (sorted)
  int64_t round_size = 0;           // fedavg: |S_t|
  double next_tick = 0;             // fedfix: time of the next window close
  uint64_t rng_state = 0;           // fedavg client sampling (SplitMix64)
  std::vector<float> tau_estimate;  // live mode: EMA of round trips (empty in simulation)
  // Counters.
  int64_t accepted = 0;
  int64_t rejected_stale = 0;
  int64_t rejected_nonfinite = 0;
  int64_t robust_failures = 0;               // steps where the robust rule refused its input
  int64_t empty_steps = 0;                   // fedfix windows with no update
  std::vector<int64_t> staleness_histogram;  // accepted updates by staleness (capped bin)
  double last_step_weight = 0;               // Σω of the last server step (FedFix logs it)
  template <class A>
  void serialize(A& ar) {
    ar(version, model, accumulator, pending, pending_weight, round_open, round_size, next_tick,
       rng_state, tau_estimate, accepted, rejected_stale, rejected_nonfinite, robust_failures,
       empty_steps, staleness_histogram, last_step_weight);
  }
};

// Largest staleness bin; staler updates are counted in the last bin.
inline constexpr int64_t kStalenessBins = 1024;

class FederatedServer {
 public:
  // `initial_model` is θ⁰. `importance` holds p_i per client (empty = uniform
  // 1/num_clients); `mean_time` holds τ_i (empty = estimated online from
  // ObserveRoundTrip, as a live server must). Fails on bad options or sizes.
  static Result<std::unique_ptr<FederatedServer>> Create(
      const FederatedOptions& options, int64_t num_clients, std::vector<float> initial_model,
      std::vector<float> importance = {}, std::vector<float> mean_time = {}, uint64_t seed = 1);
  FederatedServer(const FederatedServer&) = delete;
  FederatedServer& operator=(const FederatedServer&) = delete;

  const FederatedOptions& options() const { return options_; }
  const FederatedState& state() const { return state_; }
  int64_t version() const { return state_.version; }
  const std::vector<float>& model() const { return state_.model; }
  int64_t num_clients() const { return num_clients_; }
  // The weight d_i this server gives client i's next update (before staleness scaling).
  double ClientWeight(int64_t client) const;

  // fedavg: samples S_t (m of M uniformly without replacement, or all) and
  // opens the round. FailedPrecondition if a round is open. Sorted ids.
  Result<std::vector<int64_t>> BeginRound();
  // fedavg: a participant will never return (dropout); may close the round.
  // Returns true when the round closed (version advanced).
  Result<bool> Abandon(int64_t client);

  // Any algorithm: one client update. Rejections are counted, never errors;
  // an error means misuse (wrong size, fedasync without base, unknown client).
  Result<SubmitOutcome> Submit(const ClientUpdate& update);

  // fedfix: closes every window ending at or before `now` (each is a server
  // step, empty or not). Returns the number of steps taken.
  Result<int> Tick(double now);
  double next_tick() const { return state_.next_tick; }

  // fedbuff: applies a partially filled buffer (end of a run). No-op if empty.
  Status Flush();

  // Live mode: EMA (factor 0.2) of client i's observed round trip, used as τ_i
  // when no mean_time was given.
  void ObserveRoundTrip(int64_t client, double seconds);

  Result<std::string> SaveState() const;
  // Replaces the state; InvalidArgument on a malformed or mismatched blob.
  Status LoadState(const std::string& blob);

 private:
  FederatedServer(FederatedOptions options, int64_t num_clients, std::vector<float> importance,
                  std::vector<float> mean_time, std::unique_ptr<Aggregator> rule);
  double Importance(int64_t client) const;
  double Tau(int64_t client) const;
  void Accumulate(const ClientUpdate& u, double weight);
  // Applies pending/accumulator as one step (Σ w scaled by `normaliser`), clears them.
  Status Step(double normaliser);
  void CountStaleness(int64_t s);

  FederatedOptions options_;
  int64_t num_clients_;
  std::vector<float> importance_;
  std::vector<float> mean_time_;
  double inv_tau_sum_ = 0;  // Σ_j 1/τ_j when mean_time_ is known
  bool robust_ = false;     // a non-mean rule: keep the vectors
  std::unique_ptr<Aggregator> rule_;
  FederatedState state_;
};

// Fraboni et al.'s deterministic F-X profile: τ_i = 1 − (i/(M−1))·X/100.
double FxTime(int64_t client, int64_t num_clients, double fastest_percent);

}  // namespace phalanx::aggregators
