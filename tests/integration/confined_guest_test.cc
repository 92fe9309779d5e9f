// Real guests under a confined QEMU (testing::TestQemu(): as vmgroup-qemu
// when the test runs as root, under -sandbox), booting what vmgroup keeps
// for them.
#include <sys/stat.h>

#include <filesystem>

#include "base/ids.h"
#include "guest_fixture.h"

namespace vmgroup::integration {
namespace {

class ConfinedGuestTest : public GuestFixture {};

// A restored VM boots the kernel and initrd copied into its run directory,
// root's and private as every copy vmgroup makes.
TEST_F(ConfinedGuestTest, AGuestBootsFromAKernelAndInitrdKeptInItsRunDirectory) {
  const std::string id = NewGuid(), run = engine_->vms().RunDir(id);
  ASSERT_TRUE(Env::Default()->CreateDirs(run).ok());
  const testing::TinyVmOptions guest = Guest("writer=raw");
  for (const auto& [from, to] : {std::pair{guest.config.kernel, run + "/kernel"},
                                 std::pair{guest.config.initrd, run + "/initrd"}}) {
    std::filesystem::copy_file(from, to);
    ASSERT_EQ(::chmod(to.c_str(), 0600), 0);
  }
  engine::VmDefinition def{.name = "restored",
                           .id = id,
                           .config = guest.config,
                           .disks = {engine::DiskSpec::New(guest.disk_bytes)}};
  def.config.kernel = run + "/kernel";
  def.config.initrd = run + "/initrd";
  auto defined = engine_->vms().Define(def);
  ASSERT_TRUE(defined.ok()) << defined.status().ToString();
  Status started = engine_->vms().Start(id);
  ASSERT_TRUE(started.ok()) << started.ToString();
  WaitForWrites({id}, {0}, 10);
}

}  // namespace
}  // namespace vmgroup::integration
