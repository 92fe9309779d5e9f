// PrivateLibvirtd (tests and benchmarks only): a privileged libvirtd
// (qemu:///system) of the test's own that touches nothing of the host's:
// it runs in new mount and PID namespaces, with scratch directories under
// `dir` bind-mounted over /run, /var/lib, /var/log, /var/cache and
// /etc/libvirt, and copies of /etc/passwd and /etc/group that add the
// libvirt-qemu user libvirt looks up. qemu.conf runs QEMU as root with no
// security driver, namespaces or cgroups. Ending the PID namespace's first
// process (by its pid) ends libvirtd and every QEMU it started.
// Requires root (CAP_SYS_ADMIN).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/env.h"

namespace vmgroup::testing {

// A domain booting a kernel and initrd (the guest kit), under TCG
// (type='qemu': KVM guests with an OS hang on these machines).
struct GuestDomain {
  std::string name;
  int memory_mib = 128;
  std::vector<std::string> disks;  // qcow2 images: vda, vdb, ...
  std::string kernel, initrd, append;
  std::string serial_log;  // the guest's console is written here
  bool agent = false;      // a qemu-ga channel (org.qemu.guest_agent.0)
};

class PrivateLibvirtd {
 public:
  // Starts libvirtd with its files under `dir` (created) and waits until
  // its socket answers. Failed with libvirtd's log when it does not come up
  // within 30 s.
  static Result<std::unique_ptr<PrivateLibvirtd>> Start(Env* env, const std::string& dir);
  // Ends it by pid (its PID namespace with it: every QEMU it ran).
  ~PrivateLibvirtd();

  // qemu+unix:///system?socket=<dir>/sock/libvirt-sock
  const std::string& uri() const { return uri_; }
  int pid() const { return pid_; }

  // Defines `g` (persistent) and starts it when `start`. Its UUID.
  Result<std::string> Define(const GuestDomain& g, bool start);
  // Runs `virsh -c uri() ARGS...`: its standard output; Failed with its
  // standard error when it exits non-zero.
  Result<std::string> Virsh(const std::vector<std::string>& args);

 private:
  PrivateLibvirtd(Env* env, std::string dir, int pid);

  Env* env_;
  std::string dir_;
  int pid_;
  std::string uri_;
};

}  // namespace vmgroup::testing
