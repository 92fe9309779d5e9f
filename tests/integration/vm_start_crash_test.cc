// A daemon killed while it starts a VM, between QEMU answering and the
// catalog recording the VM as running (fault point vm.started). Found by
// crash_campaign (docs/campaign.md: SIGKILL 126 ms after `vm start`): the
// QEMU ran on, unknown to the catalog and to recovery, holding the VM's
// disk, so every later start failed on the image's write lock and every
// destroy touching that disk was left half-done.
#include <signal.h>

#include <filesystem>

#include "engine/fault_points.h"
#include "group_fixture.h"
#include "hypervisor/qemu/qemu_vm.h"

namespace vmgroup::integration {
namespace {

// The PIDs of the QEMUs started for VM `id` (its -uuid).
std::vector<int> QemusOf(const std::string& id) {
  std::vector<int> pids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (hypervisor::qemu::IsQemuOf(Env::Default(), std::stoi(name), id)) {
      pids.push_back(std::stoi(name));
    }
  }
  return pids;
}

class VmStartCrashTest : public GroupFixture {};

TEST_F(VmStartCrashTest, ACrashWhileAVmStartsLeavesNoQemuRecoveryDoesNotKnow) {
  const std::string id = MakeGroup("s", 1, /*start=*/false).vm_ids.at(0);
  engine_.reset();
  auto crashed = Env::Default()->Run(
      {CRASH_HELPER, dir_ / "state", "start", id, std::string(engine::fault::kVmStarted)});
  ASSERT_TRUE(crashed.ok());
  ASSERT_EQ(crashed->exit_code, -1) << crashed->err;
  ASSERT_EQ(QemusOf(id).size(), 1u) << "the helper died with its QEMU running";

  OpenEngine();  // recovery
  const catalog::VmRecord vm = Vm(id);
  const std::vector<int> qemus = QemusOf(id);
  for (int pid : qemus) {
    if (pid != vm.pid) (void)Env::Default()->Kill(pid, SIGKILL);  // no stray outlives the test
  }
  if (vm.power == catalog::Power::kOff) {
    EXPECT_TRUE(qemus.empty()) << "VM is off after recovery, but QEMU " << qemus[0] << " runs";
    EXPECT_TRUE(engine_->vms().Start(id).ok()) << "its disk is still held";
  } else {
    EXPECT_EQ(qemus, std::vector<int>{vm.pid}) << "recovery adopted a QEMU, but not that one";
  }
}

}  // namespace
}  // namespace vmgroup::integration
