// GuestFixture: GroupFixture with real Linux guests (tests/guest_kit: Debian's
// cloud kernel and a busybox initramfs whose workload the kernel command line
// picks), built once per test binary into the build folder.
#pragma once

#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "group_fixture.h"

namespace vmgroup::integration {

// For guests running "writer=raw":
// The highest "wrote N" the guest printed: records 1..N were acknowledged.
inline int64_t Acknowledged(const std::string& serial_log) {
  std::ifstream f(serial_log);
  std::string line;
  int64_t last = 0;
  static const std::regex kWrote("wrote ([0-9]+)");
  std::smatch m;
  while (std::getline(f, line)) {
    if (std::regex_search(line, m, kWrote)) last = std::stoll(m[1]);
  }
  return last;
}

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

  // Waits until every guest has acknowledged at least `at_least` more records
  // than `from` (by index). Fails at once if a guest's QEMU stops running.
  void WaitForWrites(const std::vector<std::string>& ids, const std::vector<int64_t>& from,
                     int64_t at_least) {
    const auto deadline = Clock::now() + std::chrono::minutes(2);
    for (size_t i = 0; i < ids.size(); ++i) {
      while (Acknowledged(Serial(ids[i])) < from[i] + at_least) {
        ASSERT_EQ(LiveState(ids[i]), hypervisor::RunState::kRunning)
            << "guest " << i << " stopped; serial log:\n"
            << SerialText(ids[i]);
        ASSERT_LT(Clock::now(), deadline) << "guest " << i << " is not writing; serial log:\n"
                                          << SerialText(ids[i]);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
  std::vector<int64_t> AcknowledgedAll(const std::vector<std::string>& ids) {
    std::vector<int64_t> out;
    for (const auto& id : ids) out.push_back(Acknowledged(Serial(id)));
    return out;
  }
};

}  // namespace vmgroup::integration
