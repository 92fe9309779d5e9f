// The guest kit's guests (tests/guest_kit: a Debian kernel and a busybox
// initrd whose workload its kernel command line names) as tests and
// benchmarks boot them.
#pragma once

#include <string>

namespace vmgroup::testing {

// The kernel command line of a guest running `workload` ("writer=raw",
// "agent=1 writer=fs", ...). console=ttyS0: the serial log that tests read;
// panic=-1 (with -no-reboot or on_reboot=destroy): a guest that panics
// ends rather than rebooting forever; quiet: the log holds the workload's
// lines; no_timer_check: the kernel trusts the emulated timer instead of
// checking that its interrupt arrives in time, a check that a TCG vCPU
// starved by a busy host can fail, hanging the boot (seen in CI: "..MP-BIOS
// bug: 8254 timer not connected to IO-APIC", then nothing for minutes).
inline std::string GuestKernelArgs(const std::string& workload) {
  return "console=ttyS0 panic=-1 quiet no_timer_check " + workload;
}

}  // namespace vmgroup::testing
