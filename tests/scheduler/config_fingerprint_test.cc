// The scheduler refuses a node whose config fingerprint differs from the
// job's, naming the first key that differs; the node's Start fails at once
// (not after the register timeout). Real scheduler and membership clients
// over loopback TCP, in process.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/control.h"
#include "common/membership.h"
#include "common/metrics.h"
#include "scheduler/scheduler.h"

namespace phalanx {
namespace {

ConfigFingerprint Job() {
  return {{"cluster.mode", "sync"}, {"model.kind", "softmax"}, {"model.hidden", "256"}};
}

TEST(ConfigFingerprintTest, RegisterBodyCarriesItAndBoundsIt) {
  RegisterBody b;
  b.node.role = Role::kWorker;
  b.node.host = "127.0.0.1";
  b.fingerprint = Job();
  auto d = DecodeRegister(EncodeRegister(b));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->fingerprint, Job());

  b.fingerprint.assign(300, {"k", "v"});  // over the 256-key bound
  auto over = DecodeRegister(EncodeRegister(b));
  EXPECT_FALSE(over.ok());
  // A body cut inside the fingerprint is refused, not read past its end.
  b.fingerprint = Job();
  std::string bytes = EncodeRegister(b);
  EXPECT_FALSE(DecodeRegister(bytes.substr(0, bytes.size() - 3)).ok());
}

TEST(ConfigFingerprintTest, MismatchNamesTheFirstDifferingKeyAndBothValues) {
  EXPECT_EQ(FingerprintMismatch(Job(), Job()), "");
  ConfigFingerprint node = Job();
  node[1].second = "mlp";
  node[2].second = "64";
  EXPECT_EQ(FingerprintMismatch(Job(), node),
            "model.kind is \"mlp\" in this node's config but \"softmax\" in the scheduler's");
  const ConfigFingerprint job = Job();
  ConfigFingerprint shorter(job.begin(), job.begin() + 2);
  EXPECT_EQ(FingerprintMismatch(Job(), shorter),
            "model.hidden is unset in this node's config but \"256\" in the scheduler's");
  ConfigFingerprint longer = Job();
  longer.emplace_back("train.rounds", "10");
  EXPECT_EQ(FingerprintMismatch(Job(), longer),
            "train.rounds is \"10\" in this node's config but unset in the scheduler's");
}

class SchedulerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    scheduler::SchedulerOptions o;
    o.expected_servers = 1;
    o.expected_workers = 1;
    o.fingerprint = Job();
    auto s = scheduler::Scheduler::Create(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    sched_ = std::move(s).value();
    thread_ = std::thread([this] { (void)sched_->Run(&stop_); });
  }
  void TearDown() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  MembershipOptions Node(Role role, ConfigFingerprint fp) const {
    MembershipOptions m;
    m.scheduler_endpoint = sched_->endpoint();
    m.self.role = role;
    m.self.host = "127.0.0.1";
    m.self.data_port = role == Role::kServer ? 1 : 0;
    m.register_timeout_ms = 20000;
    m.config_fingerprint = std::move(fp);
    return m;
  }

  std::unique_ptr<scheduler::Scheduler> sched_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_F(SchedulerFixture, NodeWithAnotherJobsConfigIsRefusedAtOnce) {
  Counter& refusals = MetricsRegistry::Global().GetCounter(
      "phalanx_scheduler_config_refusals_total",
      "Registrations refused because the node's config differs from the job's");
  const uint64_t before = refusals.value();
  ConfigFingerprint mlp = Job();
  mlp[1].second = "mlp";
  auto t0 = std::chrono::steady_clock::now();
  auto refused = MembershipClient::Start(Node(Role::kWorker, mlp));
  auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("model.kind is \"mlp\""), std::string::npos)
      << refused.status().ToString();
  // Refused by an answer, not by the 20 s register timeout.
  EXPECT_LT(waited, std::chrono::seconds(10));
  EXPECT_EQ(refusals.value(), before + 1);
}

TEST_F(SchedulerFixture, SameConfigAndHandBuiltNodesAreAccepted) {
  auto server = MembershipClient::Start(Node(Role::kServer, Job()));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto worker = MembershipClient::Start(Node(Role::kWorker, {}));  // tests send none
  ASSERT_TRUE(worker.ok()) << worker.status().ToString();
  auto view = (*worker)->WaitForView(1, 10000);
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  EXPECT_EQ(view->servers.size(), 1u);
  EXPECT_EQ(view->workers.size(), 1u);
}

}  // namespace
}  // namespace phalanx
