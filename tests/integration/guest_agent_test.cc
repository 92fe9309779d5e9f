// The QEMU guest agent through the driver, on real guests (tests/guest_kit,
// agent=1): a freeze flushes the guest's ext4 filesystem and holds its
// writes until the thaw, and the image taken while frozen is clean (taken
// unfrozen, its journal needs replay); a guest without an agent is told
// apart within seconds.
#include "hypervisor/qemu/guest_agent.h"

#include <thread>

#include "guest_fixture.h"

namespace vmgroup::integration {
namespace {

using GuestAgentTest = GuestFixture;

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

TEST_F(GuestAgentTest, TheThawGuardThawsWhenItsCallerStallsDiesOrSaysSoAndNotWhenDisarmed) {
  std::string id;
  auto vm = AgentGuest("guarded", &id);
  ASSERT_TRUE(vm);
  auto guard_over_open_channel = [&](Duration within) {
    EXPECT_TRUE(vm->OpenAgent(Soon()).ok());
    return engine_->vms().GuardThaw({vm}, within);
  };

  // Disarmed in time: the guest stays frozen until its freezer thaws it.
  auto guard = guard_over_open_channel(std::chrono::seconds(30));
  ASSERT_TRUE(guard.ok()) << guard.status().ToString();
  ASSERT_TRUE(vm->FreezeFilesystems(Soon()).ok());
  (*guard)->Disarm();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_TRUE(*vm->FilesystemsFrozen(Soon())) << "a disarmed guard thaws nothing";
  ASSERT_GE(*vm->ThawFilesystems(Soon()), 1);

  // Never disarmed, its freezer stalled with the channel still open (a
  // guard connecting anew would wait behind it): the guard thaws the guest
  // through its copy of the channel.
  guard = guard_over_open_channel(std::chrono::seconds(2));
  ASSERT_TRUE(guard.ok()) << guard.status().ToString();
  ASSERT_TRUE(vm->FreezeFilesystems(Soon()).ok());
  const auto frozen_at = Clock::now();
  WaitThawed(*vm, frozen_at);
  EXPECT_GE(Clock::now() - frozen_at, std::chrono::milliseconds(1500)) << "not before its time";
  WaitForWrites({id}, {Acknowledged(Serial(id))}, 50);
  (*guard)->Disarm();  // already done: harmless

  // Told to thaw now (its caller's own thaw failed): done when ThawNow returns.
  guard = guard_over_open_channel(std::chrono::minutes(1));
  ASSERT_TRUE(guard.ok()) << guard.status().ToString();
  ASSERT_TRUE(vm->FreezeFilesystems(Soon()).ok());
  const auto told_at = Clock::now();
  (*guard)->ThawNow();
  EXPECT_FALSE(*vm->FilesystemsFrozen(Soon()));
  EXPECT_LT(Clock::now() - told_at, std::chrono::seconds(5)) << "not its minute";
  EXPECT_EQ(*vm->ThawFilesystems(Soon()), 0) << "closes the channel; nothing left to thaw";

  // Its caller killed: the guard thaws at once, not at the end of its minute.
  const auto killed_at = Clock::now();
  auto helper = Env::Default()->Run(
      {CRASH_HELPER, "guard", hypervisor::qemu::GuestAgent::SocketPath(engine_->vms().RunDir(id))});
  ASSERT_TRUE(helper.ok()) << helper.status().ToString();
  ASSERT_EQ(helper->exit_code, -1) << "froze the guest, then was killed: " << helper->err;
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
