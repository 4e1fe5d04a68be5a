// The simulated population: a client's speed and its local training (pure
// functions of the seed), test evaluation, and building the population from
// a config (Simulator::Create).

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "aggregators/federated.h"
#include "launch/sim/internal/sim_impl.h"
#include "worker/byzantine.h"

namespace phalanx::launch {
namespace {

using internal::Below;
using internal::Mix;
using internal::Uniform;

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

double Simulator::Impl::Duration(const SimConfig& c, int64_t client, int64_t round) const {
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

void Simulator::Impl::Train(const SimConfig& c, int64_t client, int64_t round,
                            const std::vector<float>& base, std::vector<float>* delta) const {
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

std::pair<double, double> Simulator::Impl::Evaluate(const std::vector<float>& theta,
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

}  // namespace phalanx::launch
