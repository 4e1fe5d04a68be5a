// Writes the seed inputs of the fuzz targets into tests/fuzz/corpus/<target>/
// (checked in): valid examples of every format, made by the project's own
// encoders and writers, so the fuzzers start from deep inside each format.
// Usage: fuzz_make_seeds CORPUS_DIR SOURCE_DIR SHARED_VECTORS_DIR

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "common/control.h"
#include "common/message.h"
#include "ps/internal/coordination.h"
#include "ps/snapshot.h"
#include "ps/table.h"
#include "tests/fuzz/snapshot_layout.h"

namespace {

namespace fs = std::filesystem;
namespace px = phalanx;

fs::path corpus;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(corpus / target);
  std::ofstream(corpus / target / ("seed-" + name), std::ios::binary) << bytes;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The chunk framing of fuzz_util.h's ChunkReader.
std::string Chunk(const std::string& bytes) {
  const size_t n = std::min<size_t>(bytes.size(), 0xffff);
  std::string out{static_cast<char>(n & 0xff), static_cast<char>(n >> 8)};
  return out + bytes.substr(0, n);
}

std::string Frames(const px::Message& m) {
  std::string out = Chunk(px::EncodeHeader(m.header));
  if (px::IsDataMessage(m.header.type)) {
    out += Chunk(std::string(reinterpret_cast<const char*>(m.keys.data()), m.keys.size()));
    out += Chunk(std::string(reinterpret_cast<const char*>(m.values.data()), m.values.size()));
  } else if (!m.body.empty()) {
    out += Chunk(m.body);
  }
  return out;
}

void WireAndBodies() {
  std::vector<uint64_t> keys = {3, 1, 4};
  std::vector<float> grads = {0.5f, -1, 2, 0.25f, 1e-3f, 7};
  auto push =
      px::MakeDataMessage(px::MsgType::kPush, 2, 9, 1, 1, 2, px::Buffer::Copy(keys.data(), 24),
                          px::Buffer::Copy(grads.data(), 24));
  Write("wire", "push", Frames(push));
  auto pull = px::MakeDataMessage(px::MsgType::kPull, 2, 10, 0, 1, 2,
                                  px::Buffer::Copy(keys.data(), 24), px::Buffer(), false);
  Write("wire", "pull", Frames(pull));
  auto reply = px::MakeDataMessage(px::MsgType::kPullResponse, 1, 10, 3, 1, 2, px::Buffer(),
                                   px::Buffer::Copy(grads.data(), 24));
  Write("wire", "pull-response", Frames(reply));
  Write("wire", "error",
        Frames(px::MakeErrorMessage(1, 11, px::InvalidArgument("push dim 3 but table has 2"))));

  px::RegisterBody reg;
  reg.node.role = px::Role::kServer;
  reg.node.host = "127.0.0.1";
  reg.node.data_port = 4000;
  reg.node.http_port = 4001;
  px::ClusterView view;
  view.epoch = 3;
  view.num_slots = 4;
  view.servers = {reg.node};
  px::NodeInfo worker;
  worker.id = 2;
  worker.rank = 0;
  worker.host = "127.0.0.1";
  view.workers = {worker};
  view.slot_owner = {0, 0, 0, 0};
  px::BarrierBody barrier{"start", 1};
  const std::string bodies[] = {px::EncodeRegister(reg), px::EncodeRegisterAck({5, 1}),
                                px::EncodeClusterView(view), px::EncodeBarrier(barrier)};
  const px::MsgType types[] = {px::MsgType::kRegister, px::MsgType::kRegisterAck,
                               px::MsgType::kClusterView, px::MsgType::kBarrier};
  const char* names[] = {"register", "register-ack", "cluster-view", "barrier"};
  for (int i = 0; i < 4; ++i) {
    Write("wire", names[i], Frames(px::MakeControlMessage(types[i], 1, 7, bodies[i])));
    Write("body", names[i], std::string(1, static_cast<char>(i)) + bodies[i]);
  }
  Write("wire", "heartbeat", Frames(px::MakeControlMessage(px::MsgType::kHeartbeat, 1, 8, "")));

  px::ps::internal::GramPartial partial;
  partial.workers = {2, 3, 4};
  partial.finite = {1, 1, 0};
  partial.gram = Eigen::MatrixXd::Identity(3, 3);
  Write("body", "gram-partial", std::string(1, 4) + px::ps::internal::EncodePartial(partial));
  // The coordinator's combination (selector 6): rule byte, two shards' partials
  // of 5 workers (the Gram of 5 vectors split over two slices).
  Eigen::MatrixXd x = Eigen::MatrixXd::Random(8, 5);
  std::string combine{6, 0};
  for (int half = 0; half < 2; ++half) {
    px::ps::internal::GramPartial shard;
    shard.workers = {1, 2, 3, 4, 5};
    shard.finite = {1, 1, 1, 1, 1};
    const Eigen::MatrixXd rows = x.middleRows(half * 4, 4);
    shard.gram = rows.transpose() * rows;
    combine += Chunk(px::ps::internal::EncodePartial(shard));
  }
  for (char rule = 0; rule < 3; ++rule) {
    combine[1] = rule;
    Write("body", "combine-" + std::to_string(rule), combine);
  }
  px::ps::internal::RoundPlan plan;
  plan.workers = {2, 3, 4};
  plan.plan.mixing = Eigen::MatrixXd::Constant(3, 1, 1.0 / 3);
  plan.plan.coefficients = Eigen::VectorXd::Ones(1);
  Write("body", "round-plan", std::string(1, 5) + px::ps::internal::EncodePlan(plan));
}

// Messages to a live server (flag byte 1: the harness writes the registered
// worker's id into the sender field).
void ServerMessages() {
  std::vector<uint64_t> keys = {1, 2};
  std::vector<float> grads = {0.5f, -1, 2, 0.25f, 1e-3f, 7, 1, 1};
  auto data = [&](px::MsgType type, int64_t round, uint32_t table, uint32_t dim, bool values,
                  uint8_t flags = 0) {
    auto m = px::MakeDataMessage(type, 0, 77, round, table, dim, px::Buffer::Copy(keys.data(), 16),
                                 values ? px::Buffer::Copy(grads.data(), 32) : px::Buffer(), false);
    m.header.flags = flags;
    return std::string(1, 1) + Frames(m);
  };
  Write("server", "pull", data(px::MsgType::kPull, 0, 1, 4, false));
  Write("server", "pull-next-round", data(px::MsgType::kPull, 1, 1, 4, false));
  Write("server", "push", data(px::MsgType::kPush, 0, 1, 4, true));
  Write("server", "push-table0", data(px::MsgType::kPush, 0, 0, 4, true));
  Write("server", "push-ahead", data(px::MsgType::kPush, 3, 1, 4, true));
  Write("server", "push-parts", data(px::MsgType::kPush, 0, 1, 4, true, px::kFlagMoreParts));
  Write("server", "honest-peek", data(px::MsgType::kHonestPeek, 0, 1, 4, false));
  px::ps::internal::GramPartial partial;
  partial.workers = {1};
  partial.finite = {1};
  partial.gram = Eigen::MatrixXd::Identity(1, 1);
  auto gram = px::MakeControlMessage(px::MsgType::kGramPartial, 0, 78,
                                     px::ps::internal::EncodePartial(partial));
  Write("server", "gram-partial", std::string(1, 1) + Frames(gram));
}

// Messages to the scheduler: registrations of each role, then what a
// registered node sends (its id is 1 when it registered first).
void SchedulerMessages() {
  px::RegisterBody reg;
  reg.node.host = "127.0.0.1";
  reg.node.data_port = 4000;
  for (px::Role role : {px::Role::kServer, px::Role::kWorker}) {
    reg.node.role = role;
    Write("scheduler", std::string("register-") + px::RoleName(role),
          Frames(px::MakeControlMessage(px::MsgType::kRegister, -1, 1, px::EncodeRegister(reg))));
  }
  reg.requested_rank = 1;
  Write("scheduler", "register-rank",
        Frames(px::MakeControlMessage(px::MsgType::kRegister, -1, 1, px::EncodeRegister(reg))));
  Write("scheduler", "heartbeat",
        Frames(px::MakeControlMessage(px::MsgType::kHeartbeat, 1, 2, "")));
  Write("scheduler", "barrier",
        Frames(px::MakeControlMessage(px::MsgType::kBarrier, 1, 3, px::EncodeBarrier({"go", 1}))));
  Write("scheduler", "leave", Frames(px::MakeControlMessage(px::MsgType::kLeave, 1, 4, "")));
}

// Replies of a fake server to the client (flag bit 0: the client pulls; bit
// 1: its keys repeat one, so 4 rows come back).
void ClientReplies() {
  std::vector<float> rows(5 * 4, 0.25f);
  for (size_t n : {5, 4}) {
    auto reply = px::MakeDataMessage(px::MsgType::kPullResponse, 1, 0, 0, 1, 4, px::Buffer(),
                                     px::Buffer::Copy(rows.data(), n * 16), false);
    const char flag = n == 5 ? 1 : 3;
    Write("client", "pull-reply-" + std::to_string(n), std::string(1, flag) + Frames(reply));
  }
  auto ack = px::MakeDataMessage(px::MsgType::kPushAck, 1, 0, 1, 1, 0, px::Buffer(), px::Buffer());
  Write("client", "push-ack", std::string(1, 0) + Frames(ack));
  Write("client", "error",
        std::string(1, 1) + Frames(px::MakeErrorMessage(1, 0, px::NotFound("unknown table 1"))));
}

void Snapshot() {
  const auto layout = px::fuzz::SnapshotFuzzTables();
  auto a = px::ps::EmbeddingTable::Create(layout[0]).value();
  auto b = px::ps::EmbeddingTable::Create(layout[1]).value();
  std::vector<uint64_t> keys = {1, 2, 3};
  std::vector<float> g(12, 0.5f);
  a->Apply(keys, g.data());
  b->Apply(keys, g.data());
  auto image = px::ps::SnapshotImage::Capture(0, 4, 1, {a.get(), b.get()}, {5, 6}).value();
  const fs::path dir = fs::temp_directory_path() / "phx-fuzz-seeds";
  auto info = image->WriteTo(dir.string()).value();
  const std::string file = ReadFile(info.path);
  fs::remove_all(dir);
  Write("snapshot", "as-written", std::string(1, 0) + file);
  // Without its footer, for the harness to recompute (flag bit 0).
  Write("snapshot", "footer-by-harness", std::string(1, 1) + file.substr(0, file.size() - 24));
}

void Datasets() {
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  Write("dataset", "idx-labels",
        std::string(1, 0) + std::string("\0\0\x08\x01", 4) + be32(5) + std::string("\1\2\3\4\5"));
  Write("dataset", "idx-images",
        std::string(1, 1) + std::string("\0\0\x08\x03", 4) + be32(2) + be32(2) + be32(2) +
            std::string("\0\x10\x20\x30\x40\x50\x60\x70", 8));
  Write("dataset", "mail",
        std::string(1, 2) +
            "From: a@b.c\nSubject: Cheap meds now\nReceived: x\n\nBuy cheap meds now, best "
            "prices!\nClick here: http://example.com\n");
  Write("dataset", "libsvm",
        std::string(1, 3) + "# comment\n+1 1:0.5 7:1 qid:3\n-1 2:1 3:-2.5 # trailing\n\n0 1:1\n");
}

void Configs(const fs::path& source) {
  const std::pair<const char*, char> dirs[] = {
      {"launch/configs", 0}, {"launch/simulations", 1}, {"launch/experiments", 2}};
  for (const auto& [dir, which] : dirs) {
    for (const auto& e : fs::directory_iterator(source / dir)) {
      if (e.path().extension() != ".toml") continue;
      Write("config", e.path().stem().string(),
            std::string(1, which) + Chunk(ReadFile(e.path())) + Chunk("cluster.workers=3"));
    }
  }
}

void AggregateCases(const fs::path& vectors) {
  // The smallest case of every rule, and of the Flag aggregator.
  for (const auto& rule : fs::directory_iterator(vectors / "robust" / "aggregators")) {
    if (!rule.is_directory()) continue;
    fs::path smallest;
    for (const auto& f : fs::directory_iterator(rule.path())) {
      if (smallest.empty() || fs::file_size(f.path()) < fs::file_size(smallest)) smallest = f;
    }
    if (!smallest.empty()) {
      Write("aggregate", rule.path().filename().string(), std::string(1, 1) + ReadFile(smallest));
    }
  }
  Write("aggregate", "flag",
        std::string(1, 0) + ReadFile(vectors / "flag" / "n7_d10_r4_zero1.json"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR SOURCE_DIR SHARED_VECTORS_DIR\n", argv[0]);
    return 2;
  }
  corpus = argv[1];
  WireAndBodies();
  ServerMessages();
  SchedulerMessages();
  ClientReplies();
  Snapshot();
  Datasets();
  Configs(argv[2]);
  AggregateCases(argv[3]);
  std::printf("seeds written to %s\n", argv[1]);
  return 0;
}
