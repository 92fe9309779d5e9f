// The accelerator probe: does an accelerator run guests on this host?
//
// A /dev/kvm that opens is not a KVM that runs guests. Nested under a
// hypervisor that lacks the CPU features, KVM on this project's test
// machines runs a guest at about 6 µs per instruction (every instruction
// traps): QEMU starts, the vCPU runs, and an OS guest spends minutes in its
// firmware and never finishes booting. So the probe runs the first things a
// kernel does and a bounded amount of work: a 64 KiB firmware image of ours
// (-bios, no disk) whose reset vector enters protected mode, turns on PAE
// paging and long mode, turns a loop 10^7 times and writes to
// isa-debug-exit. A working KVM does that in milliseconds and TCG in about
// 0.2 s; the broken KVM takes minutes.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "base/env.h"
#include "base/status.h"

namespace vmgroup::hypervisor::qemu {

struct AccelProbe {
  std::string binary = "qemu-system-x86_64";
  // Prefix that runs QEMU as its user (QemuUser::RunAs): the probe must
  // open /dev/kvm as the VMs will. Empty: as this process.
  std::vector<std::string> run_as;
  // For QEMU's start and the guest's run together.
  Duration deadline = std::chrono::seconds(5);
  // Where the firmware image is written (made and removed by the probe);
  // its parent must exist and QEMU's user must reach into it.
  std::string dir = "/tmp";
};

// OK when the probe's guest, run by QEMU under `accel` ("kvm", "tcg"),
// reports back within probe.deadline. Timeout when it does not (QEMU is
// killed); Unavailable, with the end of QEMU's stderr, when QEMU ends
// without the guest's report (e.g. /dev/kvm cannot be opened); IoError when
// the firmware cannot be written.
Status ProbeAccel(Env* env, std::string_view accel, const AccelProbe& probe);

}  // namespace vmgroup::hypervisor::qemu
