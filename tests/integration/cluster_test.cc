// Multi-process integration tests: the real `phalanx` binary as scheduler,
// servers and workers over ZeroMQ/TCP on loopback, training real data.

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "aggregators/gram.h"
#include "common/cpu.h"
#include "common/message.h"
#include "common/transport.h"
#include "tests/testutil/process.h"
#include "tests/testutil/process_cluster.h"
#include "worker/client.h"

namespace phalanx {
namespace {

namespace fs = std::filesystem;
using testutil::Config;
using testutil::HttpGet;
using testutil::Process;
using testutil::ProcessCluster;
using testutil::TempDir;
using testutil::WaitForLine;

std::string SpamPath() { return std::string(PHX_SOURCE_DIR) + "/data/spam-assassin/data"; }

nlohmann::json ReadJson(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in, nullptr, false);
}

// Runs `phalanx launch local` and returns its summary.json.
nlohmann::json Launch(const std::string& config, const fs::path& out, std::vector<std::string> sets,
                      int* exit_code) {
  std::vector<std::string> args = {"launch", "local",      "--config", config,
                                   "--out",  out.string(), "--quiet"};
  for (auto& s : sets) {
    args.push_back("--set");
    args.push_back(s);
  }
  Process p;
  EXPECT_TRUE(p.Start(args, (out / "launcher.log").string()));
  *exit_code = p.Wait(600000);
  return ReadJson(out / "summary.json");
}

TEST(ClusterTest, SoftmaxTrainsFashionMnist) {
  fs::path out = TempDir("softmax");
  int code = 0;
  auto summary = Launch(Config("fashion-mnist-softmax"), out,
                        {"train.rounds=300", "train.eval_every=150"}, &code);
  ASSERT_EQ(code, 0) << std::ifstream(out / "launcher.log").rdbuf();
  EXPECT_GE(summary["final_test_accuracy"].get<double>(), 0.78);
  EXPECT_EQ(summary["rounds"].get<int>(), 300);
  EXPECT_GT(fs::file_size(out / "metrics.csv"), 100u);
  EXPECT_TRUE(fs::exists(out / "training.png"));
  EXPECT_TRUE(fs::exists(out / "logs" / "server-1.log"));
}

TEST(ClusterTest, MlpTrainsFashionMnist) {
  fs::path out = TempDir("mlp");
  int code = 0;
  auto summary = Launch(Config("fashion-mnist-mlp"), out,
                        {"train.rounds=400", "train.eval_every=200", "model.hidden=64"}, &code);
  ASSERT_EQ(code, 0) << std::ifstream(out / "launcher.log").rdbuf();
  EXPECT_GE(summary["final_test_accuracy"].get<double>(), 0.80);
}

TEST(ClusterTest, EmbeddingBagTrainsSpamAssassin) {
  if (!fs::exists(SpamPath())) GTEST_SKIP() << "run scripts/setup.sh for the SpamAssassin corpus";
  fs::path out = TempDir("spam");
  int code = 0;
  auto summary = Launch(
      Config("spam-embedding"), out,
      {"train.rounds=300", "train.eval_every=150", "data.path=\"" + SpamPath() + "\""}, &code);
  ASSERT_EQ(code, 0) << std::ifstream(out / "launcher.log").rdbuf();
  EXPECT_GE(summary["final_test_accuracy"].get<double>(), 0.90);
}

TEST(ClusterTest, AsyncModeTrains) {
  fs::path out = TempDir("async");
  int code = 0;
  auto summary = Launch(Config("fashion-mnist-softmax"), out,
                        {"train.rounds=300", "train.eval_every=150", "cluster.mode=async",
                         "optimizer.learning_rate=0.001"},
                        &code);
  ASSERT_EQ(code, 0) << std::ifstream(out / "launcher.log").rdbuf();
  EXPECT_GE(summary["final_test_accuracy"].get<double>(), 0.75);
}

TEST(ClusterTest, BadConfigAndMissingDataFailClearly) {
  fs::path out = TempDir("badcfg");
  fs::path bad = out / "bad.toml";
  std::ofstream(bad) << "[cluster]\nservers = 2\nworkerz = 3\n";
  Process p;
  ASSERT_TRUE(p.Start({"launch", "local", "--config", bad.string(), "--out", (out / "o").string()},
                      (out / "err.log").string()));
  EXPECT_EQ(p.Wait(30000), 1);
  std::stringstream err;
  err << std::ifstream(out / "err.log").rdbuf();
  EXPECT_NE(err.str().find("cluster.workerz"), std::string::npos) << err.str();

  Process q;
  ASSERT_TRUE(q.Start({"launch", "local", "--config", Config("fashion-mnist-softmax"), "--out",
                       (out / "o2").string(), "--set", "data.path=\"/nonexistent/fmnist\""},
                      (out / "err2.log").string()));
  EXPECT_EQ(q.Wait(30000), 1);
  std::stringstream err2;
  err2 << std::ifstream(out / "err2.log").rdbuf();
  EXPECT_NE(err2.str().find("/nonexistent/fmnist"), std::string::npos) << err2.str();
}

TEST(ClusterTest, UnreachableSchedulerFailsAfterTimeout) {
  Process p;
  fs::path out = TempDir("unreach");
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(p.Start({"server", "--config", Config("fashion-mnist-softmax"), "--scheduler",
                       "tcp://127.0.0.1:9", "--set", "cluster.register_timeout_ms=800"},
                      (out / "err.log").string()));
  EXPECT_EQ(p.Wait(20000), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  std::stringstream err;
  err << std::ifstream(out / "err.log").rdbuf();
  EXPECT_NE(err.str().find("no answer from the scheduler"), std::string::npos) << err.str();
}

TEST(ClusterTest, SyncRoundsSurviveAWorkerKilledWithSigkill) {
  ProcessCluster cluster(
      "kill", 2, 3,
      {"train.rounds=400", "train.eval_every=400", "train.log_every=10", "cluster.heartbeat_ms=100",
       "cluster.heartbeat_timeout_ms=1000", "cluster.round_timeout_ms=5000"});
  ASSERT_FALSE(cluster.endpoint().empty());
  Process& w0 = cluster.AddWorker(0);
  Process& w1 = cluster.AddWorker(1);
  Process& w2 = cluster.AddWorker(2);
  // Let training get going, then kill worker 2 outright.
  ASSERT_TRUE(WaitForLine(w2, kProgressLinePrefix, ParseProgressLine, 120000).has_value());
  w2.Signal(SIGKILL);
  EXPECT_EQ(w2.Wait(10000), 128 + SIGKILL);
  // The others finish every round; worker 0 reports its final accuracy.
  EXPECT_EQ(w1.Wait(300000), 0);
  EXPECT_EQ(w0.Wait(300000), 0) << w0.output();
  auto line = LastLineWithPrefix(w0.output(), kResultLinePrefix);
  ASSERT_TRUE(line);
  auto result = ParseResultLine(*line);
  ASSERT_TRUE(result);
  EXPECT_GT(result->final_test_accuracy, 0.7);
  EXPECT_NE(w0.output().find("\"round\":400"), std::string::npos);
  EXPECT_EQ(cluster.scheduler().Wait(30000), 0);
}

// The test process itself is the one worker, so it can send bad requests.
class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<ProcessCluster>("bad", 1, 1, std::vector<std::string>{});
    ASSERT_FALSE(cluster_->endpoint().empty());
    worker::ClientOptions o;
    o.scheduler_endpoint = cluster_->endpoint();
    o.request_timeout_ms = 10000;
    auto c = worker::Client::Create(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c).value();
    auto view = client_->view();
    ASSERT_EQ(view.servers.size(), 1u);
    server_endpoint_ = TcpEndpoint(view.servers[0].host, view.servers[0].data_port);
    server_http_ = view.servers[0].http_port;
  }

  std::vector<float> PullRows(const std::vector<uint64_t>& keys, int64_t min_version = 0) {
    std::vector<float> out(keys.size() * 256);
    Status s = client_->Pull(0, keys, 256, min_version, out.data());
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  std::unique_ptr<ProcessCluster> cluster_;
  std::unique_ptr<worker::Client> client_;
  std::string server_endpoint_;
  int server_http_ = 0;
};

TEST_F(BadInputTest, MalformedBytesAreRejectedAndTheServerStaysUp) {
  std::vector<uint64_t> keys = {0, 1, 2, 3};
  auto before = PullRows(keys);
  auto raw = Socket::Connect(Socket::Kind::kDealer, server_endpoint_);
  ASSERT_TRUE(raw.ok());
  std::mt19937_64 rng(7);
  std::string header = EncodeHeader(Header{});
  std::vector<std::vector<std::string>> attacks = {
      {"garbage"},
      {std::string(header.size(), '\x01'), "", ""},
      {header.substr(0, header.size() - 3), "", ""},  // truncated header
  };
  // A header claiming 10^12 keys with an empty key frame.
  Header huge;
  huge.type = MsgType::kPush;
  huge.sender = client_->id();
  huge.num_keys = 1000000000000ull;
  huge.dim = 256;
  attacks.push_back({EncodeHeader(huge), "", ""});
  // Counts that disagree with the frames.
  Header lie;
  lie.type = MsgType::kPush;
  lie.sender = client_->id();
  lie.num_keys = 2;
  lie.num_values = 512;
  lie.dim = 256;
  attacks.push_back({EncodeHeader(lie), std::string(8, 'k'), std::string(100, 'v')});
  for (int i = 0; i < 50; ++i) {
    std::vector<std::string> frames(1 + rng() % 4);
    for (auto& f : frames) {
      f.resize(rng() % 200);
      for (auto& c : f) c = static_cast<char>(rng());
    }
    attacks.push_back(frames);
  }
  for (const auto& a : attacks) ASSERT_TRUE((*raw)->SendRaw(a).ok());
  // Every well-formed-enough attack gets an error reply; none crashes the server.
  int replies = 0;
  while (true) {
    Received r = (*raw)->Recv(1000);
    if (!r.status.ok()) break;
    EXPECT_EQ(r.msg.header.type, MsgType::kError);
    replies++;
  }
  EXPECT_GE(replies, 5);
  auto after = PullRows(keys);
  EXPECT_EQ(before, after);  // the table is intact
  std::string metrics = HttpGet(server_http_, "/metrics");
  EXPECT_NE(metrics.find("phalanx_malformed_messages_total"), std::string::npos);
  // Random bytes at the scheduler do not take it down either.
  auto sched = Socket::Connect(Socket::Kind::kDealer, cluster_->endpoint());
  ASSERT_TRUE(sched.ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE((*sched)->SendRaw({std::string(i * 7, 'x')}).ok());
  auto status = cluster_->SchedulerStatus();
  ASSERT_FALSE(status.is_discarded());
  EXPECT_EQ(status["role"], "scheduler");
}

TEST_F(BadInputTest, StatusAndMetricsNameTheBuildAndKernels) {
  // Until the server has joined the cluster its /status says "starting".
  nlohmann::json status;
  for (int i = 0; i < 200; ++i) {
    status = nlohmann::json::parse(HttpGet(server_http_, "/status"), nullptr, false);
    if (!status.is_discarded() && !status.contains("state")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(status.is_discarded());
  ASSERT_FALSE(status.contains("state")) << status.dump();
  // The server process runs in this test's environment: same CPU, same PHX_KERNEL.
  const std::string gram(aggregators::GramKernelName());
  EXPECT_EQ(status["build"]["kernels"]["gram"], gram) << status.dump();
  EXPECT_EQ(status["build"]["cpu"]["avx2"], HostCpuFeatures().avx2) << status.dump();
  EXPECT_FALSE(status["build"]["version"].get<std::string>().empty()) << status.dump();
  std::string metrics = HttpGet(server_http_, "/metrics");
  EXPECT_NE(metrics.find("phalanx_build_info{version=\""), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("gram_kernel=\"" + gram + "\""), std::string::npos) << metrics;
}

TEST_F(BadInputTest, WrongShapesUnknownTablesAndStrangersAreRejected) {
  std::vector<uint64_t> keys = {0, 1};
  auto before = PullRows(keys);
  std::vector<float> grad(2 * 8, 1.0f);
  // Wrong dimension for table 0 (dim 256).
  Status s = client_->Push(0, keys, 8, grad.data(), 0);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  // Unknown table.
  s = client_->Push(7, keys, 8, grad.data(), 0);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  std::vector<float> out(2 * 8);
  s = client_->Pull(9, keys, 8, 0, out.data());
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  // A node that never registered.
  auto stranger = Socket::Connect(Socket::Kind::kDealer, server_endpoint_);
  ASSERT_TRUE(stranger.ok());
  Message pull = MakeDataMessage(MsgType::kPull, 4242, 1, 0, 0, 256,
                                 Buffer::FromVector(std::vector<uint64_t>{0}), Buffer());
  ASSERT_TRUE((*stranger)->Send(pull).ok());
  Received r = (*stranger)->Recv(5000);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.msg.header.type, MsgType::kError);
  EXPECT_EQ(StatusFromError(r.msg).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(PullRows(keys), before);
}

TEST_F(BadInputTest, NonFiniteGradientsAreDroppedNotApplied) {
  std::vector<uint64_t> keys = {0, 1};
  auto before = PullRows(keys);
  std::vector<float> grad(2 * 256, 0.5f);
  grad[3] = std::nanf("");
  grad[300] = INFINITY;
  Status s = client_->Push(0, keys, 256, grad.data(), 0);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  // The round closed without the dropped push: version 1, values unchanged.
  worker::PullResult pr;
  std::vector<float> after(keys.size() * 256);
  ASSERT_TRUE(client_->Pull(0, keys, 256, 1, after.data(), &pr).ok());
  EXPECT_EQ(pr.version, 1);
  EXPECT_EQ(after, before);
  for (float v : after) EXPECT_TRUE(std::isfinite(v));
  // A finite push for round 1 is applied.
  std::vector<float> good(2 * 256, 0.5f);
  ASSERT_TRUE(client_->Push(0, keys, 256, good.data(), 1).ok());
  ASSERT_TRUE(client_->Pull(0, keys, 256, 2, after.data(), &pr).ok());
  EXPECT_EQ(pr.version, 2);
  EXPECT_NE(after, before);
  std::string metrics = HttpGet(server_http_, "/metrics");
  EXPECT_NE(metrics.find("phalanx_server_nonfinite_pushes_total 1"), std::string::npos) << metrics;
}

}  // namespace
}  // namespace phalanx

namespace phalanx {
namespace {

// Byzantine workers on a real cluster: NaN gradients are dropped on every
// shard, and random gradients break the mean but not the Flag aggregator.
TEST(ByzantineClusterTest, NanWorkersAreDroppedAndTrainingContinues) {
  fs::path out = TempDir("nan");
  int code = 0;
  auto summary = Launch(
      Config("fashion-mnist-softmax"), out,
      {"train.rounds=200", "train.eval_every=200", "byzantine.count=1", "byzantine.attack=nan"},
      &code);
  ASSERT_EQ(code, 0) << std::ifstream(out / "launcher.log").rdbuf();
  EXPECT_GE(summary["final_test_accuracy"].get<double>(), 0.75);
}

TEST(ByzantineClusterTest, RandomGradientsBreakMeanNotFlag) {
  std::vector<std::string> sets = {
      "cluster.workers=7", "train.rounds=300",        "model.hidden=32", "train.eval_every=300",
      "byzantine.count=2", "byzantine.attack=random", "aggregator.f=2"};
  fs::path out = TempDir("random-mean");
  int code = 0;
  auto s = sets;
  s.push_back("aggregator.name=mean");
  auto mean = Launch(Config("fashion-mnist-mlp"), out, s, &code);
  ASSERT_EQ(code, 0);
  fs::path out2 = TempDir("random-flag");
  s = sets;
  s.push_back("aggregator.name=flag");
  auto flag = Launch(Config("fashion-mnist-mlp"), out2, s, &code);
  ASSERT_EQ(code, 0);
  EXPECT_LT(mean["final_test_accuracy"].get<double>(), 0.3);
  EXPECT_GT(flag["final_test_accuracy"].get<double>(), 0.65);
}

}  // namespace
}  // namespace phalanx
