// Tiny VMs for tests, benchmarks and the demo: a few small qcow2 disks and a
// firmware-only machine (or a kernel and initrd, for real guests), grouped
// into a VM collection. Enough to exercise every snapshot mechanic on QEMU.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/vm_config.h"
#include "engine/engine.h"

namespace vmgroup::testing {

// Tests and benchmarks run QEMU under TCG: it behaves the same on every
// machine, nested or not (a /dev/kvm that opens may still fail real guests),
// and it is what the CI machines have.
inline constexpr hypervisor::qemu::Accel kTestAccel = hypervisor::qemu::Accel::kTcg;

// The unprivileged user QEMU runs as in tests run as root, as under a root
// vmgroupd (scripts/install-deps.sh creates it), so that every real-QEMU
// test takes the sandboxed path; as the test itself otherwise.
inline constexpr const char* kQemuUser = "vmgroup-qemu";

// QEMU as tests and benchmarks run it: kTestAccel, as kQemuUser when root.
hypervisor::qemu::QemuOptions TestQemu();

// Makes `dir` (and its missing parents) a directory the QEMU of TestQemu()
// may pass through and create files in (a test's second monitor socket).
Status MakeQemuWritableDir(const std::string& dir);

struct TinyVmOptions {
  int disks = 2;
  uint64_t disk_bytes = 16 << 20;
  VmConfig config{.memory_mib = 64};
  // A second monitor at GuestMonitorPath, for testing::WriteAsGuest.
  bool guest_monitor = false;
};

// Where the second monitor of VM `name` defined in `image_dir` listens.
std::string GuestMonitorPath(const std::string& image_dir, const std::string& name);

struct TinyGroup {
  std::string collection_id;
  std::vector<std::string> vm_ids;
};

// Creates the VM's disks as <image_dir>/<name>-d<i>.qcow2 and defines it.
Result<std::string> DefineTinyVm(engine::Engine& engine, const std::string& image_dir,
                                 const std::string& name, const TinyVmOptions& options);

// Defines VMs <prefix>0 .. <prefix>n-1, starts them (in parallel) when
// `start`, and puts them in a new VM collection named `prefix`.
Result<TinyGroup> MakeTinyGroup(engine::Engine& engine, const std::string& image_dir,
                                const std::string& prefix, int n, const TinyVmOptions& options,
                                bool start = true);

// Makes `qcow2` a new image of `bytes` holding an empty ext4 filesystem,
// made on the host (busybox guests cannot make one with a journal), for
// guests running "writer=fs".
Status MakeExt4Image(const std::string& qcow2, int64_t bytes);

}  // namespace vmgroup::testing
