#include "engine/fake_group_test.h"

#include <set>
#include <thread>

#include "engine/snapshot_plan.h"
#include "testing/temp_dir.h"

namespace vmgroup::engine {
namespace {

// Engines abandoned by a crash, with threads stopped inside them: never
// destroyed (reachable, so no leak checker counts them).
std::vector<std::unique_ptr<Engine>>& Abandoned() {
  static auto* engines = new std::vector<std::unique_ptr<Engine>>;
  return *engines;
}

// Longest an operation may take to reach the point it dies at.
constexpr auto kDeathTimeout = std::chrono::seconds(30);

}  // namespace

FakeGroupTest::FakeGroupTest() : dir_(std::make_unique<testing::TempDir>()) {}

FakeGroupTest::~FakeGroupTest() = default;

std::string FakeGroupTest::Path(const std::string& name) const { return *dir_ / name; }

void FakeGroupTest::Open() {
  engine_.reset();
  auto e = Engine::Open({.state_dir = Path("state"),
                         .env = driver_.env(),
                         .driver = &driver_,
                         .snapshot = snapshot_options_,
                         .peers = peers_});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  engine_ = std::move(e).value();
}

FakeGroup FakeGroupTest::MakeGroup(int n, const std::string& prefix) {
  FakeGroup g;
  auto c =
      engine_->collections().DefineCollection(prefix, "", catalog::CollectionType::kVirtualSystems);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  g.collection_id = c.ok() ? *c : "";
  for (int i = 0; i < n; ++i) {
    auto id = engine_->vms().Define(
        {.name = prefix + std::to_string(i), .disks = {DiskSpec::New(int64_t{1} << 20)}});
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    if (!id.ok()) return g;
    EXPECT_TRUE(engine_->collections().AddMember(*id, g.collection_id).ok());
    EXPECT_TRUE(engine_->vms().Start(*id).ok());
    g.vm_ids.push_back(*id);
  }
  return g;
}

catalog::VmRecord FakeGroupTest::Vm(const std::string& id) {
  auto vm = engine_->catalog().GetVm(id);
  EXPECT_TRUE(vm.ok()) << vm.status().ToString();
  return vm.ok() ? *vm : catalog::VmRecord{};
}

std::map<std::string, std::vector<std::string>> FakeGroupTest::Disks(const FakeGroup& g) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& id : g.vm_ids) out[id] = Vm(id).disks;
  return out;
}

catalog::SnapshotRecord FakeGroupTest::Snapshot(const FakeGroup& g, int type) {
  auto s = engine_->snapshots().Create({.collection_id = g.collection_id, .type = type});
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : catalog::SnapshotRecord{};
}

std::shared_ptr<hypervisor::fake::FakeVm> FakeGroupTest::Fake(const std::string& id) {
  return driver_.Running(Vm(id).name);
}

void FakeGroupTest::FailAt(std::string point, std::string subject, int times) {
  auto left = std::make_shared<int>(times);
  points_.OnHit([=](std::string_view p, std::string_view s) {
    if (p != point || (!subject.empty() && s != subject) || *left == 0) return Status::Ok();
    --*left;
    return Status::Failed("injected at " + point);
  });
}

bool FakeGroupTest::CrashAt(std::string_view point, const std::function<void(Engine&)>& op,
                            const std::string& subject) {
  dying_.DieAt(std::string(point), subject);
  Engine* engine = engine_.get();
  auto ended = std::make_shared<std::atomic<bool>>(false);
  std::thread worker([engine, op, ended] {
    op(*engine);
    *ended = true;
  });
  const Clock::time_point until = Clock::now() + kDeathTimeout;
  bool died = false;
  while (!died && !*ended && Clock::now() < until) {
    died = dying_.AwaitDeath(std::chrono::milliseconds(10));
  }
  if (!died) {
    worker.join();
    dying_.DieAt("");
    ADD_FAILURE() << "the operation ended without reaching " << point;
    return false;
  }
  worker.detach();  // stopped for good inside the engine
  Abandoned().push_back(std::move(engine_));
  dying_.Revive();
  Open();
  return true;
}

void FakeGroupTest::ExpectConsistent() {
  auto snapshots = engine_->catalog().ListSnapshots();
  ASSERT_TRUE(snapshots.ok()) << snapshots.status().ToString();
  auto rps = engine_->catalog().ListReferencePoints();
  ASSERT_TRUE(rps.ok()) << rps.status().ToString();
  std::map<std::string, const catalog::MemberSnapshot*> members;
  std::set<std::string> named, trackings;
  for (const auto& s : *snapshots) {
    EXPECT_EQ(s.state, catalog::SnapshotState::kComplete) << "snapshot " << s.name;
    if (std::string t = BitmapFor(s.type, s.tag); !t.empty()) trackings.insert(t);
    for (const auto& m : s.members) {
      members[m.id] = &m;
      named.insert(m.memory_state);
      for (const auto& d : m.disks) named.insert({d.frozen_image, d.overlay});
    }
  }
  for (const auto& rp : *rps) trackings.insert(rp.bitmap);
  std::set<int> pids;
  for (const auto& vm : *engine_->catalog().ListVms()) {
    named.insert(vm.disks.begin(), vm.disks.end());
    auto fake = driver_.Running(vm.name);
    if (vm.power == catalog::Power::kOff) {
      EXPECT_EQ(fake, nullptr) << vm.name << " is off but its QEMU runs";
    } else {
      ASSERT_NE(fake, nullptr) << vm.name << " is " << catalog::PowerName(vm.power);
      EXPECT_EQ(fake->pid(), vm.pid) << vm.name;
      pids.insert(vm.pid);
      EXPECT_EQ(fake->state(), vm.power == catalog::Power::kRunning ? hypervisor::RunState::kRunning
                                                                    : hypervisor::RunState::kPaused)
          << vm.name;
      EXPECT_EQ(fake->active(), vm.disks) << vm.name << " runs on other images than recorded";
      for (const auto& [name, disks] : fake->trackings()) {
        EXPECT_TRUE(trackings.count(name)) << vm.name << " keeps tracking " << name;
      }
    }
    for (size_t i = 0; i < vm.disks.size(); ++i) {
      std::vector<std::string> expected = {vm.disks[i]};
      for (std::string m = vm.current_snapshot; !m.empty();) {
        auto it = members.find(m);
        ASSERT_NE(it, members.end()) << vm.name << ": member snapshot " << m << " is gone";
        expected.push_back(it->second->disks.at(i).frozen_image);
        m = it->second->parent_id;
      }
      std::vector<std::string> chain;
      auto read = img_.Chain(vm.disks[i]);
      ASSERT_TRUE(read.ok()) << read.status().ToString();
      for (const auto& image : *read) chain.push_back(image.filename);
      EXPECT_EQ(chain, expected) << vm.name << " disk " << i;
    }
    const std::string run_dir = engine_->vms().RunDir(vm.id);
    for (const auto& name : *Env::Default()->ListDir(run_dir)) {
      if (IsSnapshotFileName(name)) {
        EXPECT_TRUE(named.count(run_dir + "/" + name)) << vm.name << ": stray file " << name;
      }
    }
  }
  for (const auto& p : *engine_->catalog().ListProcesses()) {
    EXPECT_TRUE(pids.count(p.pid)) << "process " << p.pid << " of " << p.vm_id << " is no VM's";
  }
}

}  // namespace vmgroup::engine
