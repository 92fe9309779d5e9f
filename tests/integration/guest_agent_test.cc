// The QEMU guest agent through the driver, on real guests (tests/guest_kit,
// agent=1): a freeze flushes the guest's ext4 filesystem and holds its
// writes until the thaw, and the image taken while frozen is clean (taken
// unfrozen, its journal needs replay); a guest without an agent is told
// apart within seconds.
#include "hypervisor/qemu/guest_agent.h"

#include <filesystem>
#include <thread>

#include "guest_fixture.h"

namespace vmgroup::integration {
namespace {

namespace fs = std::filesystem;

class GuestAgentTest : public GuestFixture {
 protected:
  // A guest running `workload` on a disk that holds an ext4 filesystem made
  // here (busybox cannot make one with a journal).
  std::string Ext4Guest(const std::string& name, const std::string& workload) {
    auto id = testing::DefineTinyVm(*engine_, dir_ / "images", name, Guest(workload));
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    if (!id.ok()) return "";
    const std::string raw = dir_ / (name + ".raw"), disk = Vm(*id).disks[0];
    EXPECT_TRUE(Run({"truncate", "-s", "64M", raw}));
    EXPECT_TRUE(Run({"mkfs.ext4", "-q", "-F", raw}));
    fs::remove(disk);
    EXPECT_TRUE(Run({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, disk}));
    fs::remove(raw);
    EXPECT_TRUE(engine_->vms().Start(*id).ok());
    return *id;
  }
  static bool Run(const std::vector<std::string>& argv) {
    auto r = Env::Default()->Run(argv, std::chrono::minutes(1));
    EXPECT_TRUE(r.ok() && r->exit_code == 0)
        << argv[0] << ": " << (r.ok() ? r->err + r->out : r.status().ToString());
    return r.ok() && r->exit_code == 0;
  }
  void WaitForSerial(const std::string& id, const std::string& marker) {
    const auto deadline = Clock::now() + std::chrono::minutes(2);
    while (SerialText(id).find(marker) == std::string::npos) {
      ASSERT_LT(Clock::now(), deadline) << "no " << marker << "; serial log:\n" << SerialText(id);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  // What `image` holds now, read beside the running QEMU: the exit code of
  // e2fsck -fn, and whether the journal must be replayed first.
  struct Check {
    int fsck = -1;
    bool needs_recovery = false;
  };
  Check Examine(const std::string& image) {
    const std::string raw = dir_ / "fsck.raw";
    fs::remove(raw);
    EXPECT_TRUE(Run({"qemu-img", "convert", "-U", "-O", "raw", image, raw}));
    Check c;
    auto fsck = Env::Default()->Run({"e2fsck", "-fn", raw}, std::chrono::minutes(1));
    auto header = Env::Default()->Run({"dumpe2fs", "-h", raw}, std::chrono::minutes(1));
    if (fsck.ok()) c.fsck = fsck->exit_code;
    c.needs_recovery = header.ok() && header->out.find("needs_recovery") != std::string::npos;
    fs::remove(raw);
    return c;
  }
  static Deadline Soon() { return Clock::now() + std::chrono::seconds(30); }
  // An ext4 guest with its agent, writing files; its live VM (null on failure).
  std::shared_ptr<hypervisor::Vm> AgentGuest(const std::string& name, std::string* id) {
    *id = Ext4Guest(name, "agent=1 writer=fs");
    if (id->empty()) return nullptr;
    WaitForSerial(*id, "AGENT-READY");
    WaitForWrites({*id}, {0}, 50);
    return engine_->vms().Live(*id);
  }
  // Waits until the guest's filesystems are thawed, by whoever thaws them.
  void WaitThawed(hypervisor::Vm& vm, Clock::time_point since) {
    while (*vm.FilesystemsFrozen(Soon())) {
      ASSERT_LT(Clock::now() - since, std::chrono::seconds(10)) << "nobody thawed the guest";
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
};

TEST_F(GuestAgentTest, AFreezeHoldsTheGuestsWritesAndLeavesACleanFilesystem) {
  std::string id;
  auto vm = AgentGuest("fs", &id);
  ASSERT_TRUE(vm);

  auto frozen = vm->FreezeFilesystems(Soon());
  ASSERT_TRUE(frozen.ok()) << frozen.status().ToString();
  EXPECT_GE(*frozen, 1) << "the ext4 filesystem on /mnt";
  EXPECT_TRUE(*vm->FilesystemsFrozen(Soon()));
  const int64_t at_freeze = Acknowledged(Serial(id));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_LE(Acknowledged(Serial(id)), at_freeze + 50) << "writes wait while frozen";
  const Check at_rest = Examine(Vm(id).disks[0]);
  EXPECT_EQ(at_rest.fsck, 0) << "a frozen filesystem is clean on disk";
  EXPECT_FALSE(at_rest.needs_recovery) << "its journal is flushed";

  auto thawed = vm->ThawFilesystems(Soon());
  ASSERT_TRUE(thawed.ok()) << thawed.status().ToString();
  EXPECT_EQ(*thawed, *frozen);
  EXPECT_FALSE(*vm->FilesystemsFrozen(Soon()));
  WaitForWrites({id}, {Acknowledged(Serial(id))}, 100);  // the guest writes on
  EXPECT_EQ(*vm->ThawFilesystems(Soon()), 0) << "nothing left to thaw";
}

TEST_F(GuestAgentTest, TheThawGuardThawsWhenItsCallerStallsOrDiesAndNotWhenDisarmed) {
  std::string id;
  auto vm = AgentGuest("guarded", &id);
  ASSERT_TRUE(vm);

  // Disarmed in time: the guest stays frozen until its freezer thaws it.
  auto guard = engine_->vms().GuardThaw({Vm(id)}, std::chrono::seconds(30));
  ASSERT_TRUE(guard.ok()) << guard.status().ToString();
  ASSERT_TRUE(vm->FreezeFilesystems(Soon()).ok());
  (*guard)->Disarm();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_TRUE(*vm->FilesystemsFrozen(Soon())) << "a disarmed guard thaws nothing";
  ASSERT_GE(*vm->ThawFilesystems(Soon()), 1);

  // Never disarmed (the freezer stalled): the guard thaws the guest by itself.
  guard = engine_->vms().GuardThaw({Vm(id)}, std::chrono::seconds(2));
  ASSERT_TRUE(guard.ok()) << guard.status().ToString();
  ASSERT_TRUE(vm->FreezeFilesystems(Soon()).ok());
  const auto frozen_at = Clock::now();
  WaitThawed(*vm, frozen_at);
  EXPECT_GE(Clock::now() - frozen_at, std::chrono::milliseconds(1500)) << "not before its time";
  WaitForWrites({id}, {Acknowledged(Serial(id))}, 50);
  (*guard)->Disarm();  // already done: harmless

  // Its caller killed: the guard thaws at once, not at the end of its minute.
  ASSERT_TRUE(vm->FreezeFilesystems(Soon()).ok());
  const auto killed_at = Clock::now();
  auto helper = Env::Default()->Run(
      {CRASH_HELPER, "guard", hypervisor::qemu::GuestAgent::SocketPath(engine_->vms().RunDir(id))});
  ASSERT_TRUE(helper.ok()) << helper.status().ToString();
  WaitThawed(*vm, killed_at);
  WaitForWrites({id}, {Acknowledged(Serial(id))}, 50);
}

TEST_F(GuestAgentTest, AGuestWithoutAnAgentIsToldApartInSeconds) {
  const std::string id = Ext4Guest("plain", "writer=fs");
  ASSERT_FALSE(id.empty());
  WaitForWrites({id}, {0}, 50);
  auto vm = engine_->vms().Live(id);
  ASSERT_TRUE(vm);
  const auto t0 = Clock::now();
  auto frozen = vm->FreezeFilesystems(Clock::now() + std::chrono::seconds(30));
  EXPECT_EQ(frozen.status().code(), Code::kUnavailable) << frozen.status().ToString();
  EXPECT_NE(frozen.status().message().find("qemu-ga"), std::string::npos)
      << frozen.status().message();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5)) << "not the freeze's 30 s";
  WaitForWrites({id}, {Acknowledged(Serial(id))}, 50);  // never frozen
  // The difference a freeze makes: read as it runs, the journal needs replay.
  EXPECT_TRUE(Examine(Vm(id).disks[0]).needs_recovery);
}

}  // namespace
}  // namespace vmgroup::integration
