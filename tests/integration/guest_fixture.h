// GuestFixture: GroupFixture with real Linux guests (tests/guest_kit: Debian's
// cloud kernel and a busybox initramfs whose workload the kernel command line
// picks), built once per test binary into the build folder.
#pragma once

#include <fstream>
#include <sstream>

#include "group_fixture.h"

namespace vmgroup::integration {

class GuestFixture : public GroupFixture {
 protected:
  static void SetUpTestSuite() {
    auto r = Env::Default()->Run({GUEST_KIT_BUILD, GUEST_KIT_DIR}, std::chrono::minutes(5));
    ASSERT_TRUE(r.ok() && r->exit_code == 0)
        << "cannot build the guest kit: " << (r.ok() ? r->err : r.status().ToString());
  }

  // A one-disk guest of `memory_mib` running `workload` ("writer=raw", ...).
  static testing::TinyVmOptions Guest(const std::string& workload, int memory_mib = 128) {
    return {.disks = 1,
            .disk_bytes = 64 << 20,
            .memory_mib = memory_mib,
            .kernel = std::string(GUEST_KIT_DIR) + "/vmlinuz",
            .initrd = std::string(GUEST_KIT_DIR) + "/initrd.gz",
            .append = "console=ttyS0 panic=-1 quiet " + workload,
            .extra_args = {"-no-reboot"}};
  }

  std::string Serial(const std::string& vm_id) {
    return engine_->vms().RunDir(vm_id) + "/serial.log";
  }
  std::string SerialText(const std::string& vm_id) {
    std::stringstream text;
    text << std::ifstream(Serial(vm_id)).rdbuf();
    return text.str();
  }
};

}  // namespace vmgroup::integration
