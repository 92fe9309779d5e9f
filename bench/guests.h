// Real guests on vmgroup's side of a benchmark (tests/guest_kit): the VM
// options a GuestSpec stands for, and waiting for what their consoles say.
#pragma once

#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "libvirt_side.h"
#include "testing/tiny_vms.h"

namespace vmgroup::bench {

// A one-disk tiny VM running `g` (64 MiB disk).
inline testing::TinyVmOptions GuestOptions(const GuestSpec& g) {
  return {.disks = 1,
          .disk_bytes = 64 << 20,
          .config = {.memory_mib = g.memory_mib,
                     .kernel = g.kernel,
                     .initrd = g.initrd,
                     .append = g.cmdline,
                     .extra_args = {"-no-reboot"}}};
}

// Waits until every VM's serial console shows `marker`.
inline Status WaitForMarker(engine::Engine& e, const std::vector<std::string>& ids,
                            const std::string& marker) {
  const auto deadline = Clock::now() + std::chrono::minutes(5);
  for (const auto& id : ids) {
    while (true) {
      auto text = Env::Default()->ReadFile(e.vms().RunDir(id) + "/serial.log");
      if (text.ok() && text->find(marker) != std::string::npos) break;
      if (Clock::now() > deadline) return Status::Timeout("guest never printed " + marker);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return Status::Ok();
}

}  // namespace vmgroup::bench
