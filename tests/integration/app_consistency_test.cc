// Application-consistent group snapshots (ConsistencyLevel 1) on real guests
// (tests/guest_kit, agent=1 writer=fs): guests that keep creating and
// renaming files on ext4 leave clean filesystems in every frozen image,
// where a crash-consistent cut of the same guests needs journal replay; a
// member without an agent fails the snapshot or falls back, as asked; and a
// service killed while the guests are frozen leaves none frozen and no
// half-made snapshot.
#include <filesystem>
#include <thread>

#include "engine/fault_points.h"
#include "engine/snapshot_plan.h"
#include "guest_fixture.h"
#include "hypervisor/qemu/guest_agent.h"

namespace vmgroup::integration {
namespace {

using catalog::Consistency;

class AppConsistencyTest : public GuestFixture {
 protected:
  // A group of ext4 guests writing files: those named in `with_agent` run
  // their agent, the others have none. Waits until every one writes.
  testing::TinyGroup Ext4Group(const std::string& prefix, const std::vector<bool>& with_agent) {
    testing::TinyGroup g;
    auto c = engine_->collections().DefineCollection(prefix, "",
                                                     catalog::CollectionType::kVirtualSystems);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return g;
    g.collection_id = *c;
    for (size_t i = 0; i < with_agent.size(); ++i) {
      const std::string id =
          Ext4Guest(prefix + std::to_string(i), with_agent[i] ? "agent=1 writer=fs" : "writer=fs");
      EXPECT_TRUE(engine_->collections().AddMember(id, g.collection_id).ok());
      g.vm_ids.push_back(id);
    }
    for (size_t i = 0; i < with_agent.size(); ++i) {
      if (with_agent[i]) {
        AwaitAgent(g.vm_ids[i]);
      } else {
        WaitForWrites({g.vm_ids[i]}, {0}, 50);
      }
    }
    return g;
  }
  // True when no guest of `ids` is frozen.
  bool NoneFrozen(const std::vector<std::string>& ids) {
    for (const auto& id : ids) {
      auto frozen = engine_->vms().Live(id)->FilesystemsFrozen(Soon());
      if (!frozen.ok() || *frozen) return false;
    }
    return true;
  }
  // Files named like a snapshot's in the VMs' run directories.
  std::vector<std::string> SnapshotFiles(const std::vector<std::string>& ids) {
    std::vector<std::string> out;
    for (const auto& id : ids) {
      for (const auto& e : std::filesystem::directory_iterator(engine_->vms().RunDir(id))) {
        const std::string name = e.path().filename();
        if (engine::IsSnapshotFileName(name)) out.push_back(name);
      }
    }
    return out;
  }
};

TEST_F(AppConsistencyTest, FrozenImagesOfWritingGuestsAreCleanWhereACrashConsistentCutIsNot) {
  auto g = Ext4Group("app", {true, true, true});
  ASSERT_EQ(g.vm_ids.size(), 3u);

  // The same guests, the same workload: first a crash-consistent cut.
  auto crash = engine_->snapshots().Create({.collection_id = g.collection_id, .type = 2});
  ASSERT_TRUE(crash.ok()) << crash.status().ToString();
  for (const auto& m : crash->members) {
    EXPECT_EQ(m.consistency, Consistency::kCrash);
    EXPECT_TRUE(Examine(m.disks[0].frozen_image).needs_recovery)
        << "a mounted ext4 cut as it runs needs its journal replayed";
  }
  EXPECT_EQ(crash->freeze_window_us, 0);

  std::vector<std::string> warnings;
  auto app = engine_->snapshots().Create(
      {.collection_id = g.collection_id,
       .type = 2,
       .consistency = Consistency::kApplication,
       .warning = [&](const std::string& w) { warnings.push_back(w); }});
  ASSERT_TRUE(app.ok()) << app.status().ToString();
  EXPECT_TRUE(warnings.empty()) << warnings[0];
  for (const auto& m : app->members) {
    EXPECT_EQ(m.consistency, Consistency::kApplication);
    const Check c = Examine(m.disks[0].frozen_image);
    EXPECT_EQ(c.fsck, 0) << "e2fsck -fn of VM " << m.vm_id << "'s frozen image";
    EXPECT_FALSE(c.needs_recovery) << "its journal was flushed by the freeze";
  }
  EXPECT_GT(app->freeze_window_us, app->pause_window_us) << "the cut happens inside the freeze";
  EXPECT_LT(app->freeze_window_us, 10'000'000) << "within the freeze bound";
  auto stored = engine_->catalog().GetSnapshot(app->id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->consistency, Consistency::kApplication);
  EXPECT_EQ(stored->members[2].consistency, Consistency::kApplication);
  EXPECT_EQ(stored->freeze_window_us, app->freeze_window_us);

  EXPECT_TRUE(NoneFrozen(g.vm_ids));
  WaitForWrites(g.vm_ids, AcknowledgedAll(g.vm_ids), 50);  // and every guest writes on
}

TEST_F(AppConsistencyTest, AMemberWithoutAnAgentFailsTheSnapshotUnlessFallbackIsAllowed) {
  auto g = Ext4Group("mixed", {true, false, true});
  ASSERT_EQ(g.vm_ids.size(), 3u);
  std::vector<std::vector<std::string>> disks;
  for (const auto& id : g.vm_ids) disks.push_back(Vm(id).disks);
  const std::string plain = Vm(g.vm_ids[1]).name;

  // Without fallback: refused, naming the member, and nothing remains.
  auto strict = engine_->snapshots().Create(
      {.collection_id = g.collection_id, .type = 2, .consistency = Consistency::kApplication});
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().code(), Code::kUnavailable) << strict.status().ToString();
  EXPECT_NE(strict.status().message().find("VM " + plain), std::string::npos)
      << strict.status().message();
  EXPECT_NE(strict.status().message().find("fallback"), std::string::npos)
      << "says what to do instead: " << strict.status().message();
  EXPECT_TRUE(engine_->catalog().ListSnapshots(g.collection_id)->empty());
  EXPECT_TRUE(SnapshotFiles(g.vm_ids).empty());
  for (size_t i = 0; i < g.vm_ids.size(); ++i) {
    EXPECT_EQ(Vm(g.vm_ids[i]).disks, disks[i]);
    EXPECT_EQ(LiveImages(g.vm_ids[i]), disks[i]);
  }
  EXPECT_TRUE(NoneFrozen({g.vm_ids[0], g.vm_ids[2]})) << "the guests it froze are thawed";
  WaitForWrites(g.vm_ids, AcknowledgedAll(g.vm_ids), 50);

  // With fallback: taken, the member cut crash consistent, and told.
  std::vector<std::string> warnings;
  auto lenient = engine_->snapshots().Create(
      {.collection_id = g.collection_id,
       .type = 2,
       .consistency = Consistency::kApplication,
       .fallback = true,
       .warning = [&](const std::string& w) { warnings.push_back(w); }});
  ASSERT_TRUE(lenient.ok()) << lenient.status().ToString();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("VM " + plain), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("crash consistent"), std::string::npos) << warnings[0];
  EXPECT_EQ(lenient->members[0].consistency, Consistency::kApplication);
  EXPECT_EQ(lenient->members[1].consistency, Consistency::kCrash);
  EXPECT_EQ(lenient->members[2].consistency, Consistency::kApplication);
  EXPECT_FALSE(Examine(lenient->members[0].disks[0].frozen_image).needs_recovery);
  EXPECT_TRUE(Examine(lenient->members[1].disks[0].frozen_image).needs_recovery);
  EXPECT_TRUE(NoneFrozen({g.vm_ids[0], g.vm_ids[2]}));
}

TEST_F(AppConsistencyTest, ServiceKilledWhileGuestsAreFrozenLeavesNoneFrozenAndNoHalfSnapshot) {
  auto g = Ext4Group("killed", {true, true});
  ASSERT_EQ(g.vm_ids.size(), 2u);
  std::vector<std::vector<std::string>> disks;
  std::vector<std::string> agents;
  for (const auto& id : g.vm_ids) {
    disks.push_back(Vm(id).disks);
    agents.push_back(hypervisor::qemu::GuestAgent::SocketPath(engine_->vms().RunDir(id)));
  }
  engine_.reset();  // the helper, like a service, needs the VMs' monitors

  // The helper freezes both guests, then dies by SIGKILL before the cut.
  auto helper = Env::Default()->Run({CRASH_HELPER, dir_ / "state", "snapshot", g.collection_id,
                                     std::string(engine::fault::kFrozen), "2", "1"},
                                    std::chrono::minutes(2));
  ASSERT_TRUE(helper.ok()) << helper.status().ToString();
  ASSERT_EQ(helper->exit_code, -1) << "the helper should have been killed: " << helper->err;

  // The helper got to the fault point, so both guests were frozen. Its thaw
  // guard thaws them at once, with no service around: asked through the
  // agents directly, as the engine stays closed.
  const auto killed_at = Clock::now();
  for (const auto& socket : agents) {
    while (true) {
      auto agent = hypervisor::qemu::GuestAgent::Connect(Env::Default(), socket, Soon());
      ASSERT_TRUE(agent.ok()) << agent.status().ToString();
      auto frozen = (*agent)->Frozen(Soon());
      ASSERT_TRUE(frozen.ok()) << frozen.status().ToString();
      if (!*frozen) break;
      ASSERT_LT(Clock::now() - killed_at, std::chrono::seconds(10))
          << "still frozen past the freeze bound";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  EXPECT_LT(Clock::now() - killed_at, std::chrono::seconds(5)) << "thawed as the helper died";

  // Had the guard died with it, the next start would thaw them: freeze them
  // again, as such a guard would have left them.
  for (const auto& socket : agents) {
    auto agent = hypervisor::qemu::GuestAgent::Connect(Env::Default(), socket, Soon());
    ASSERT_TRUE(agent.ok()) << agent.status().ToString();
    ASSERT_TRUE((*agent)->Freeze(Soon()).ok());
  }
  OpenEngine();
  const auto& report = engine_->recovery();
  EXPECT_TRUE(report.problems.ok()) << report.problems.ToString();
  EXPECT_EQ(report.rolled_back.size(), 1u) << report.Summary();
  EXPECT_EQ(report.thawed.size(), 2u) << report.Summary();
  EXPECT_TRUE(NoneFrozen(g.vm_ids));
  EXPECT_TRUE(engine_->catalog().ListSnapshots(g.collection_id)->empty());
  EXPECT_TRUE(SnapshotFiles(g.vm_ids).empty());
  for (size_t i = 0; i < g.vm_ids.size(); ++i) {
    EXPECT_EQ(Vm(g.vm_ids[i]).disks, disks[i]);
    EXPECT_EQ(LiveImages(g.vm_ids[i]), disks[i]);
  }
  WaitForWrites(g.vm_ids, AcknowledgedAll(g.vm_ids), 50);
}

}  // namespace
}  // namespace vmgroup::integration
