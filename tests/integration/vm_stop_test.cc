// Stopping VMs on QEMU under TCG (VmRegistry::Stop, what `vmgroup vm stop`
// and `vm turn-off` ask for): a guest of the guest kit, whose acpid powers it
// off on the power button, shuts down cleanly, losing none of its
// acknowledged writes and storing the cut's change tracking; a firmware-only
// VM, which nothing in it answers the button, is left running after the
// timeout, as it was, and a turn-off then ends it.
#include "guest_fixture.h"

namespace vmgroup::integration {
namespace {

using catalog::Power;

class VmStopTest : public GuestFixture {};

// What `qemu-img info` says of the bitmaps of `image` (its JSON, as text).
std::string BitmapInfo(const std::string& image) {
  auto r = Env::Default()->Run({"qemu-img", "info", "-U", "--output=json", image});
  EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
  return r.ok() ? r->out : "";
}

TEST_F(VmStopTest, AGuestThatHonoursThePowerButtonShutsDownAndKeepsItsWritesAndBitmaps) {
  auto g = WritingGroup("acpi", 1);
  ASSERT_EQ(g.vm_ids.size(), 1u);
  const std::string id = g.vm_ids[0];
  auto snap = engine_->snapshots().Create({.collection_id = g.collection_id, .type = 2});
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  WaitForWrites({id}, AcknowledgedAll({id}), 20);  // the guest writes into the overlay
  const int pid = Vm(id).pid;

  Status s = engine_->vms().Stop(id, {.shutdown = true, .timeout = std::chrono::minutes(2)});
  ASSERT_TRUE(s.ok()) << s.ToString() << "\nserial log:\n" << SerialText(id);
  // The guest acted on the button itself (a QEMU that quit would not print it).
  EXPECT_NE(SerialText(id).find("POWER-BUTTON"), std::string::npos) << SerialText(id);
  EXPECT_FALSE(Env::Default()->IsAlive(pid));
  EXPECT_EQ(Vm(id).power, Power::kOff);
  EXPECT_EQ(Vm(id).pid, 0);
  EXPECT_EQ(engine_->vms().Live(id), nullptr);

  // Every record the guest saw acknowledged is on its disk.
  const int64_t acknowledged = Acknowledged(Serial(id));
  auto prefix = GapFreePrefix(Vm(id).disks[0], dir_ / "scratch.raw");
  ASSERT_TRUE(prefix.ok()) << prefix.status().ToString();
  EXPECT_GE(*prefix, acknowledged);
  // QEMU exited as a guest poweroff ends it, cleanly: the cut's tracking is
  // stored in each overlay, and not left "in-use" (which QEMU would no
  // longer trust).
  for (const auto& d : snap->members[0].disks) {
    const std::string info = BitmapInfo(d.overlay);
    EXPECT_NE(info.find("\"vmgroup-" + snap->tag + "\""), std::string::npos) << info;
    EXPECT_EQ(info.find("in-use"), std::string::npos) << info;
  }
  // Off as after any stop: it starts again.
  ASSERT_TRUE(engine_->vms().Start(id).ok());
  EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
}

TEST_F(VmStopTest, AVmThatIgnoresThePowerButtonRunsOnAfterTheTimeoutUntilTurnedOff) {
  auto g = MakeGroup("fw", 1);  // firmware only: nothing answers ACPI
  ASSERT_EQ(g.vm_ids.size(), 1u);
  const std::string id = g.vm_ids[0];
  const int pid = Vm(id).pid;

  Status s = engine_->vms().Stop(id, {.shutdown = true, .timeout = std::chrono::seconds(5)});
  EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
  EXPECT_NE(s.message().find("did not shut down within 5 s"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("vmgroup vm turn-off"), std::string::npos) << s.ToString();
  // Nothing changed: the same QEMU runs the guest, recorded so.
  EXPECT_TRUE(Env::Default()->IsAlive(pid));
  EXPECT_EQ(Vm(id).power, Power::kRunning);
  EXPECT_EQ(Vm(id).pid, pid);
  EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);

  ASSERT_TRUE(engine_->vms().Stop(id).ok());  // turn-off
  EXPECT_FALSE(Env::Default()->IsAlive(pid));
  EXPECT_EQ(Vm(id).power, Power::kOff);
}

TEST_F(VmStopTest, AForcedStopTurnsOffAVmThatIgnoresThePowerButton) {
  auto g = MakeGroup("fwf", 1);
  ASSERT_EQ(g.vm_ids.size(), 1u);
  const std::string id = g.vm_ids[0];
  const int pid = Vm(id).pid;
  Status s = engine_->vms().Stop(
      id, {.shutdown = true, .timeout = std::chrono::seconds(3), .force = true});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Env::Default()->IsAlive(pid));
  EXPECT_EQ(Vm(id).power, Power::kOff);
}

}  // namespace
}  // namespace vmgroup::integration
